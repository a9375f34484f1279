//! The request head: the request line and header fields of one HTTP/1.x request, checked and
//! parsed in one pass. This is the process's only HTTP parser.
//!
//! Invariants a reviewer can check in this file alone:
//! - a head is at most `HEAD_LIMIT` bytes (else 431) and every line ends in CRLF: a bare LF is
//!   refused as soon as it arrives, a bare CR is a control byte (400);
//! - the request line is `method SP target SP version`: the method a token, the target without
//!   control bytes (400), the version `HTTP/1.1` or `HTTP/1.0` (else 505);
//! - a header line is `name ":" value`: the name a token right before the colon (no white
//!   space, no obs-fold), the value without control bytes but tab (400);
//! - the body's length is decided here and nowhere else (RFC 9112 §6.3): `Transfer-Encoding`
//!   ending in `chunked` (400 otherwise; 501 for another coding before it), or one
//!   `Content-Length` of digits, or no body; both, or either twice, is 400;
//! - an HTTP/1.1 head has exactly one `Host`, an HTTP/1.0 head at most one; its value is a
//!   URI host and port (400); `Authorization` comes at most once (400);
//! - handlers see no framing or hop-by-hop field: `Content-Length`, `Transfer-Encoding`,
//!   `Expect`, `Connection` and every field it names, `Keep-Alive`, `Proxy-Connection`, `TE`,
//!   `Trailer` and `Upgrade` stop here;
//! - the target reaches handlers in origin form (`http://host/p?q` becomes `/p?q`) and in ASCII:
//!   bytes over 0x7F, which HTTP does not allow but browsers send in cookies, are
//!   percent-encoded, in the target and in header values.

use crate::error::ApiError;

/// Largest request line plus headers, in bytes.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Most options a `Connection` header may name (each is matched against every field).
const CONNECTION_OPTIONS: usize = 16;

const BAD_LINE: ApiError = ApiError::BadRequest("Malformed request line");
const BAD_HEADER: ApiError = ApiError::BadRequest("Malformed header line");
const BAD_HOST: ApiError = ApiError::BadRequest("An HTTP/1.1 request needs exactly one valid Host header");
const BAD_FRAMING: ApiError =
    ApiError::BadRequest("Content-Length is invalid, repeated, or sent with Transfer-Encoding");
const BARE_LF: ApiError = ApiError::BadRequest("A line of the request head ends in a bare LF");

/// How the body that follows a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Length(usize),
    Chunked,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub http10: bool,
    /// The end-to-end fields, for the handler, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The connection ends after the response: the client asked, or HTTP/1.0 without
    /// keep-alive, or HTTP/1.0 with a chunked body (RFC 9112 §6.1).
    pub close: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (HTTP/1.0's is ignored, RFC 9110 §10.1.1).
    pub expects_continue: bool,
}

/// The length of the head at the start of `buf`, through its empty line, once it has all
/// arrived; `scanned` is how much of `buf` an earlier call has seen (so a head that trickles in
/// is not scanned again from the start).
pub fn end(buf: &[u8], scanned: usize) -> Result<Option<usize>, ApiError> {
    for at in scanned.saturating_sub(3)..buf.len() {
        if buf[at] != b'\n' {
            continue;
        }
        if at == 0 || buf[at - 1] != b'\r' {
            return Err(BARE_LF);
        }
        if at >= 3 && buf[at - 3..=at] == *b"\r\n\r\n" {
            return if at < HEAD_LIMIT { Ok(Some(at + 1)) } else { Err(ApiError::HeadersTooLarge) };
        }
    }
    if buf.len() > HEAD_LIMIT { Err(ApiError::HeadersTooLarge) } else { Ok(None) }
}

/// Parses a head as `end` delimits it (every LF after a CR, the last line empty).
pub fn parse(head: &[u8]) -> Result<Head, ApiError> {
    let text = head.strip_suffix(b"\r\n\r\n").ok_or(BAD_LINE)?;
    let mut lines = text.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_LINE);
    };
    if method.is_empty() || !method.iter().all(is_token) || target.is_empty() || target.iter().any(is_control) {
        return Err(BAD_LINE);
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(ApiError::VersionNotSupported),
    };
    let (mut length, mut chunked, mut hosts, mut expects_continue) = (None, false, 0, false);
    let (mut connection, mut headers) = (Vec::new(), Vec::new());
    for line in lines {
        let colon = line.iter().position(|&b| b == b':').ok_or(BAD_HEADER)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(is_token) || value.iter().any(|b| *b != b'\t' && is_control(b)) {
            return Err(BAD_HEADER);
        }
        let value = value.trim_ascii(); // only spaces and tabs are left to trim
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        if is("content-length") {
            if length.is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(BAD_FRAMING);
            }
            length = Some(value.iter().fold(0usize, |n, d| n.saturating_mul(10).saturating_add(usize::from(d - b'0'))));
        } else if is("transfer-encoding") {
            // Chunked must come last, or the body's end is unknown; other codings are not spoken.
            let codings: Vec<&[u8]> = value.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
            if chunked || !codings.last().is_some_and(|last| last.eq_ignore_ascii_case(b"chunked")) {
                return Err(BAD_FRAMING);
            }
            if codings.len() > 1 {
                return Err(ApiError::NotImplemented);
            }
            chunked = true;
        } else if is("expect") {
            expects_continue |= value.eq_ignore_ascii_case(b"100-continue") && !http10;
        } else if is("connection") {
            let options = value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|token| !token.is_empty());
            connection.extend(options.map(<[u8]>::to_ascii_lowercase));
            if connection.len() > CONNECTION_OPTIONS {
                return Err(BAD_HEADER);
            }
        } else if !["keep-alive", "proxy-connection", "te", "trailer", "upgrade"].into_iter().any(is) {
            // One user per request: a second `Authorization` could name another to a proxy
            // that reads the last one.
            if is("authorization")
                && headers.iter().any(|(known, _): &(String, String)| known.eq_ignore_ascii_case("authorization"))
            {
                return Err(ApiError::BadRequest("Repeated Authorization header"));
            }
            if is("host") {
                hosts += 1;
                if !value.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(b)) {
                    return Err(BAD_HOST);
                }
            }
            headers.push((ascii(name), ascii(value)));
        }
    }
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(BAD_HOST);
    }
    headers.retain(|(name, _)| !connection.iter().any(|token| token.eq_ignore_ascii_case(name.as_bytes())));
    let body = match (length, chunked) {
        (Some(_), true) => return Err(BAD_FRAMING),
        (None, true) => Body::Chunked,
        (length, false) => Body::Length(length.unwrap_or(0)),
    };
    let has = |token: &[u8]| connection.iter().any(|t| t == token);
    let close = has(b"close") || (http10 && (chunked || !has(b"keep-alive")));
    let target = match origin_form(target) {
        query @ [b'?', ..] => format!("/{}", ascii(query)),
        path => ascii(path),
    };
    Ok(Head { method: ascii(method), target, http10, headers, body, close, expects_continue })
}

/// RFC 9110 §5.6.2: `!#$%&'*+-.^_`|~`, digits and letters.
pub fn is_token(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)
}

/// C0 controls (CR, LF and NUL among them) and DEL.
pub fn is_control(b: &u8) -> bool {
    *b < 0x20 || *b == 0x7f
}

/// `http://host:port/path?q` to `/path?q`, `http://host` to `/` (and `http://host?q` to `?q`,
/// which needs a `/` in front); anything else as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|scheme| target.get(..scheme.len()).is_some_and(|t| t.eq_ignore_ascii_case(scheme)));
    let Some(scheme) = scheme else { return target };
    let rest = &target[scheme.len()..];
    rest.iter().position(|&b| b == b'/' || b == b'?').map_or(b"/", |i| &rest[i..])
}

/// The bytes as ASCII text, each byte over 0x7F percent-encoded.
fn ascii(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii() {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &[u8]) -> Result<Head, ApiError> {
        match end(text, 0)? {
            Some(at) if at == text.len() => parse(text),
            other => panic!("not one whole head ({other:?}): {}", String::from_utf8_lossy(text)),
        }
    }

    fn names(head: &Head) -> Vec<&str> {
        head.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn a_head_ends_at_its_empty_line_and_is_refused_past_the_limit() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        assert_eq!(end(request, 0).unwrap(), Some(27));
        for scanned in 0..27 {
            assert_eq!(end(request, scanned).unwrap(), Some(27), "resumed at {scanned}");
        }
        assert_eq!(end(b"GET / HTTP/1.1\r\nHost: x\r\n\r", 0).unwrap(), None);
        assert!(matches!(end(b"GET / HTTP/1.1\nHost", 0), Err(ApiError::BadRequest(_))), "bare LF, at once");
        let long = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; HEAD_LIMIT], b"\r\n\r\n"].concat();
        assert!(matches!(end(&long, 0), Err(ApiError::HeadersTooLarge)));
        assert!(matches!(end(&long[..HEAD_LIMIT + 1], 0), Err(ApiError::HeadersTooLarge)), "before it ends");
        let fits = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; HEAD_LIMIT - 23], b"\r\n\r\n"].concat();
        assert_eq!(end(&fits, 0).unwrap(), Some(HEAD_LIMIT));
    }

    #[test]
    fn heads_are_parsed_into_what_a_handler_sees() {
        let parsed =
            head(b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Y:\t z \r\nEmpty:\r\n\r\n").unwrap();
        assert_eq!((parsed.method.as_str(), parsed.target.as_str(), parsed.http10), ("POST", "/a?b=c", false));
        assert_eq!(parsed.headers, [("Host", "x"), ("X-Y", "z"), ("Empty", "")].map(|(n, v)| (n.into(), v.into())));
        assert_eq!((parsed.body, parsed.close, parsed.expects_continue), (Body::Length(4), false, false));
        let chunked = head(b"PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n");
        let chunked = chunked.unwrap();
        assert_eq!((chunked.body, chunked.expects_continue, names(&chunked)), (Body::Chunked, true, vec!["Host"]));
        assert_eq!(head(b"GET / HTTP/1.0\r\n\r\n").unwrap().body, Body::Length(0));
        let huge = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n").unwrap();
        assert_eq!(huge.body, Body::Length(usize::MAX), "not read: the handler answers 413 in the contract's order");
    }

    #[test]
    fn hop_by_hop_fields_never_reach_a_handler() {
        let parsed = head(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n\
              Trailer: X-T\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Secret: s\r\nExpect: x\r\nX-Kept: k\r\n\r\n",
        )
        .unwrap();
        assert_eq!(names(&parsed), ["Host", "X-Kept"]);
    }

    #[test]
    fn the_connection_closes_when_the_client_asks_or_http_1_0_does_not_keep_it() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: x\r\nconnection: Keep-Alive\r\nConnection: Close\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
            (b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n", true),
        ];
        for (text, close) in cases {
            assert_eq!(head(text).unwrap().close, *close, "{}", String::from_utf8_lossy(text));
        }
        let expect = head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").unwrap();
        assert!(!expect.expects_continue, "HTTP/1.0 expectations are ignored");
    }

    #[test]
    fn targets_become_origin_form_and_ascii() {
        let cases: &[(&[u8], &str)] = &[
            (b"http://h:8000/health", "/health"),
            (b"HTTPS://h/api/tasks?q=1", "/api/tasks?q=1"),
            (b"http://h", "/"),
            (b"http://h?q", "/?q"),
            (b"/api/tasks?q=\xc3\xa9", "/api/tasks?q=%C3%A9"),
            (b"/plain", "/plain"),
            (b"*", "*"),
        ];
        for (target, expected) in cases {
            let text = [&b"GET "[..], target, b" HTTP/1.1\r\nHost: h\r\nCookie: a=d\xc3\xa9\r\n\r\n"].concat();
            let parsed = head(&text).unwrap();
            assert_eq!(parsed.target, *expected, "{}", String::from_utf8_lossy(target));
            assert_eq!(parsed.headers[1].1, "a=d%C3%A9");
        }
    }

    /// The table of refused heads: each is refused with the status and detail given.
    #[test]
    fn heads_that_are_refused() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b" HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /a\x1bb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"),
            (b"GET / http/1.1\r\nHost: x\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"),
            (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "Host"),
            (b"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, "Host"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400, "Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Content"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, "Content"),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: chunked\r\n\r\n",
                400,
                "Con",
            ),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400, "Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400, "Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400, "Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400, "Content"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "Content"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n", 400, "Content"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\x0bContent-Length: 0\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nFoo : x\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: \x0ca\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n", 400, "header line"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\r\n\r\n", 400, "header line"),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n",
                400,
                "Authorization",
            ),
        ];
        for (text, status, detail) in cases {
            let refused = head(text).err().unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(text)));
            assert_eq!(refused.status(), *status, "{}: {refused:?}", String::from_utf8_lossy(text));
            assert!(*status != 400 || format!("{refused:?}").contains(detail), "{refused:?} is not about {detail}");
        }
    }
}
