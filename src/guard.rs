//! The connection guard: the only code that touches client sockets.
//!
//! rouille's HTTP layer (tiny_http) has no limits of its own: it keeps a thread per connection
//! for as long as the client likes, sets no socket timeouts, reads request heads of any size,
//! and its accept loop ends for good on the first accept error. So the guard accepts on the
//! public address and relays each connection to rouille, which listens on a loopback port.
//!
//! Invariants a reviewer can check in this file alone:
//! - at most `max_connections` client connections are open; a connection beyond that gets a
//!   503 and is closed at once;
//! - a connection idle between requests is closed after `idle_timeout`; a request not received
//!   whole within `request_timeout` of its first byte (slow clients), or not answered within
//!   `request_timeout` of its last, is cut off;
//! - a request head reaches rouille only whole, at most `HEAD_LIMIT` bytes (else 431), with
//!   unambiguous framing (else 400 or 501), in origin form, and ASCII (raw non-ASCII bytes,
//!   which HTTP does not allow, are percent-encoded);
//! - no more than `BODY_LIMIT` bytes of body (plus chunked framing) reach rouille: past that the
//!   guard stops reading, lets rouille answer (413), and closes the connection;
//! - writes to a client that does not read time out;
//! - the accept loop never ends on an error: it logs it, waits, and goes on;
//! - on `stop`, idle connections are closed and busy ones right after their response.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::{BODY_LIMIT, new_request_id};

/// Largest request line plus headers, in bytes.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// The largest `Content-Length` passed on to rouille.
const DECLARED_LIMIT: usize = 1 << 20;
/// Slack for chunked-encoding framing on top of the body limit.
const FRAMING: usize = 4 * 1024;
/// How often a relay wakes to check its timers and the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// How long a write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Relay threads need little stack: a buffer and a few frames.
const STACK: usize = 128 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// A running guard; `stop` drains it.
pub struct Guard {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stopping: AtomicBool,
    open: AtomicUsize,
}

impl Guard {
    /// Accepts on `listener` and relays to `backend` (rouille on loopback).
    pub fn start(listener: TcpListener, backend: SocketAddr, limits: Limits) -> io::Result<Guard> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { stopping: AtomicBool::new(false), open: AtomicUsize::new(0) });
        let accepting = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("guard-accept".to_owned())
            .spawn(move || accept_loop(&listener, backend, limits, &accepting))?;
        Ok(Guard { addr, shared, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stops accepting, then waits up to `drain` for open connections to finish.
    /// Returns whether they all did.
    pub fn stop(&mut self, drain: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + drain;
        // accept() returns only for a connection: make one, again if the first could not be
        // made (say, with no file descriptor to spare), until the loop has seen the flag.
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_millis(200));
            thread::sleep(Duration::from_millis(10));
        }
        match self.thread.take() {
            Some(thread) if thread.is_finished() => drop(thread.join()),
            Some(_) => log::warn!("the accept loop did not stop"),
            None => {}
        }
        while self.open_connections() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.open_connections() == 0
    }
}

/// Where to connect to reach our own listener (a wildcard address is reached on loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    wake
}

fn accept_loop(listener: &TcpListener, backend: SocketAddr, limits: Limits, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait, go on.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if shared.open.load(Ordering::SeqCst) >= limits.max_connections {
            log::warn!("connection refused: {} connections open", limits.max_connections);
            let _ = client.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = (&client).write_all(&rejection(Reject::TooManyConnections));
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let counted = Arc::new(Counted(Arc::clone(shared)));
        let spawned = thread::Builder::new().name("relay".to_owned()).stack_size(STACK).spawn(move || {
            if let Err(e) = relay(client, backend, limits, &counted) {
                log::debug!("connection ended: {e}");
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}"); // the connection was dropped
        }
    }
}

/// Decrements the open-connection count when both directions of a relay have ended, however
/// they end.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a relay ended.
enum End {
    /// The client finished sending, or the guard is draining: rouille may finish its response.
    Finished,
    /// A limit was hit or a socket failed: close both sides now.
    Cut,
}

/// Client to rouille, in this thread; rouille to client, in a second one started on the first
/// request byte (an idle connection costs one thread).
fn relay(client: TcpStream, backend_addr: SocketAddr, limits: Limits, counted: &Arc<Counted>) -> io::Result<()> {
    let shared = &counted.0;
    client.set_read_timeout(Some(TICK))?;
    client.set_write_timeout(Some(WRITE_TIMEOUT))?;
    client.set_nodelay(true)?;
    // Chunks rouille has sent; counted before each is written, so a client that has seen a
    // response always finds it counted.
    let responses = Arc::new(AtomicU64::new(0));
    let mut backend: Option<TcpStream> = None;
    let mut receiving: Option<Request> = None; // a request whose bytes are still arriving
    let mut unanswered: Option<(u64, Instant)> = None; // the last whole request: the count it waits to pass
    let mut over_budget: Option<Instant> = None; // a body too large: rouille answers, then we end
    let mut idle_since = Instant::now();
    let mut buf = [0u8; 8192];
    let end = 'relay: loop {
        let seen = responses.load(Ordering::SeqCst);
        if receiving.as_ref().is_some_and(|r| r.length_unknown() && seen > r.responses_before) {
            // Where a chunked body ends only rouille knows (it may answer before reading it
            // all): the connection ends with this response, so no leftover is taken for a head.
            break End::Finished;
        }
        if unanswered.is_some_and(|(before, _)| seen > before) {
            unanswered = None;
            idle_since = Instant::now();
        }
        if let Some(since) = over_budget {
            // Nothing more is read: rouille has had the whole limit and owes a 413 (or an
            // earlier 4xx, which the contract's order of checks may call for).
            if receiving.as_ref().is_none_or(|r| seen > r.responses_before) {
                break End::Finished;
            }
            if since.elapsed() > limits.request_timeout {
                break End::Cut;
            }
            thread::sleep(TICK);
            continue;
        }
        let between_requests = receiving.is_none() && unanswered.is_none();
        if between_requests && shared.stopping.load(Ordering::SeqCst) {
            break End::Finished; // draining: close between requests
        }
        match (&client).read(&mut buf) {
            Ok(0) => break End::Finished,
            Ok(n) => {
                let mut data = &buf[..n];
                while !data.is_empty() {
                    let current = receiving.get_or_insert_with(|| Request::new(responses.load(Ordering::SeqCst)));
                    let forward = match current.feed(data) {
                        Ok((forward, used)) => {
                            data = &data[used..];
                            forward
                        }
                        Err(Reject::BodyTooLarge) => {
                            over_budget = Some(Instant::now());
                            break;
                        }
                        Err(reject) => {
                            log::warn!("request refused: {}", reject.detail());
                            let _ = (&client).write_all(&rejection(reject));
                            break 'relay End::Cut;
                        }
                    };
                    if current.is_complete() {
                        unanswered = Some((current.responses_before, Instant::now()));
                        receiving = None;
                    }
                    if forward.is_empty() {
                        continue; // the head is not complete yet
                    }
                    let stream = match &mut backend {
                        Some(stream) => stream,
                        None => backend.insert(connect_backend(backend_addr, &client, &responses, counted)?),
                    };
                    if stream.write_all(&forward).is_err() {
                        break 'relay End::Cut;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => match &receiving {
                Some(r) if r.started.elapsed() > limits.request_timeout => {
                    log::warn!("connection cut off: request not complete after {:?}", limits.request_timeout);
                    break End::Cut;
                }
                None if unanswered.is_none() && idle_since.elapsed() > limits.idle_timeout => break End::Finished,
                None if unanswered.is_some_and(|(_, at)| at.elapsed() > limits.request_timeout) => {
                    log::warn!("connection cut off: no answer after {:?}", limits.request_timeout);
                    break End::Cut;
                }
                _ => {}
            },
            Err(_) => break End::Cut,
        }
    };
    match (end, backend) {
        // rouille finishes the response it owes, then closes; the other thread closes the client.
        (End::Finished, Some(stream)) => stream.shutdown(Shutdown::Write),
        (End::Cut, Some(stream)) => {
            let _ = stream.shutdown(Shutdown::Both);
            client.shutdown(Shutdown::Both)
        }
        (_, None) => Ok(()),
    }
}

/// Connects to rouille and starts the thread that copies its responses to the client.
fn connect_backend(
    addr: SocketAddr,
    client: &TcpStream,
    responses: &Arc<AtomicU64>,
    counted: &Arc<Counted>,
) -> io::Result<TcpStream> {
    let backend = TcpStream::connect(addr)?;
    backend.set_nodelay(true)?;
    backend.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (mut from, mut to) = (backend.try_clone()?, client.try_clone()?);
    let (responses, counted) = (Arc::clone(responses), Arc::clone(counted));
    thread::Builder::new().name("relay-back".to_owned()).stack_size(STACK).spawn(move || {
        let _counted = counted;
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = socket2::SockRef::from(&from).set_tcp_quickack(true);
            // An interim `100 Continue` asks for the body; it does not answer the request.
            if !buf[..n].starts_with(b"HTTP/1.1 100 ") {
                responses.fetch_add(1, Ordering::SeqCst);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both); // also wakes the client-side reader
        let _ = from.shutdown(Shutdown::Both);
    })?;
    Ok(backend)
}

/// Why the guard answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    TooManyConnections,
    HeadTooLarge,
    /// Not answered by the guard: rouille, which has seen the whole limit, answers.
    BodyTooLarge,
    DeclaredTooLarge,
    AmbiguousLength,
    UnsupportedTransferEncoding,
}

impl Reject {
    fn detail(self) -> &'static str {
        match self {
            Reject::TooManyConnections => "Too many connections",
            Reject::HeadTooLarge => "Request line and headers are larger than 16384 bytes",
            Reject::BodyTooLarge | Reject::DeclaredTooLarge => "Request body is larger than 65536 bytes",
            Reject::AmbiguousLength => {
                "Content-Length is invalid, repeated, or sent with Transfer-Encoding, or a line ends in a bare LF"
            }
            Reject::UnsupportedTransferEncoding => "Transfer-Encoding other than chunked",
        }
    }
}

/// The guard's own answer, in the API's error format, after which it closes the connection.
fn rejection(reject: Reject) -> Vec<u8> {
    let (status, code) = match reject {
        Reject::TooManyConnections => ("503 Service Unavailable\r\nRetry-After: 1", "unavailable"),
        Reject::HeadTooLarge => ("431 Request Header Fields Too Large", "headers_too_large"),
        Reject::BodyTooLarge | Reject::DeclaredTooLarge => ("413 Payload Too Large", "payload_too_large"),
        Reject::AmbiguousLength => ("400 Bad Request", "bad_request"),
        Reject::UnsupportedTransferEncoding => ("501 Not Implemented", "not_implemented"),
    };
    let id = new_request_id();
    let body = format!(r#"{{"detail":"{}","code":"{code}","request_id":"{id}"}}"#, reject.detail());
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-Id: {id}\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request as its bytes arrive: the head is held back until it is whole and checked; the
/// body is counted, so that the next request's bytes are known for what they are.
struct Request {
    started: Instant,
    /// The response count when this request began; a higher count means it is being answered.
    responses_before: u64,
    head: Vec<u8>,
    head_done: bool,
    /// Body bytes still to come (from `Content-Length`, 0 without one); `None` while the head
    /// is incomplete and for a chunked body, whose end only rouille finds.
    body_left: Option<usize>,
    body_bytes: usize,
}

impl Request {
    fn new(responses_before: u64) -> Request {
        Request {
            started: Instant::now(),
            responses_before,
            head: Vec::new(),
            head_done: false,
            body_left: None,
            body_bytes: 0,
        }
    }

    fn is_complete(&self) -> bool {
        self.head_done && self.body_left == Some(0)
    }

    fn length_unknown(&self) -> bool {
        self.head_done && self.body_left.is_none()
    }

    /// Takes bytes from the client; returns what may go on to rouille now, and how many of
    /// `data` belong to this request (the rest begin the next one).
    fn feed(&mut self, data: &[u8]) -> Result<(Vec<u8>, usize), Reject> {
        if self.head_done {
            return self.body(data);
        }
        let before = self.head.len();
        self.head.extend_from_slice(data);
        let blank_line = self.head[before.saturating_sub(3)..].windows(4).position(|w| w == b"\r\n\r\n");
        let Some(end) = blank_line.map(|i| before.saturating_sub(3) + i + 4) else {
            return if self.head.len() > HEAD_LIMIT { Err(Reject::HeadTooLarge) } else { Ok((Vec::new(), data.len())) };
        };
        if end > HEAD_LIMIT {
            return Err(Reject::HeadTooLarge);
        }
        self.head.truncate(end);
        self.head_done = true;
        let (mut forward, body_length) = checked_head(&self.head)?;
        self.body_left = body_length;
        let used_by_head = end - before;
        let (body, used) = self.body(&data[used_by_head..])?;
        forward.extend_from_slice(&body);
        Ok((forward, used_by_head + used))
    }

    fn body(&mut self, data: &[u8]) -> Result<(Vec<u8>, usize), Reject> {
        let take = self.body_left.map_or(data.len(), |left| left.min(data.len()));
        if let Some(left) = &mut self.body_left {
            *left -= take;
        }
        self.body_bytes += take;
        if self.body_bytes > BODY_LIMIT + FRAMING {
            return Err(Reject::BodyTooLarge);
        }
        Ok((data[..take].to_vec(), take))
    }
}

/// The head as rouille should see it, and the body's length (`None`: chunked). Framing must
/// be unambiguous (RFC 9112 §6.3); the target goes to origin form (`GET http://host/path`
/// becomes `GET /path`); non-ASCII bytes are percent-encoded.
fn checked_head(head: &[u8]) -> Result<(Vec<u8>, Option<usize>), Reject> {
    // tiny_http ends lines at CRLF only: a bare LF would make it frame the head differently.
    if head.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r')) {
        return Err(Reject::AmbiguousLength);
    }
    let (mut lengths, mut chunked) = (Vec::new(), 0);
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let digits = value.iter().all(u8::is_ascii_digit) && !value.is_empty();
            let length = std::str::from_utf8(value).ok().filter(|_| digits).and_then(|v| v.parse::<usize>().ok());
            lengths.push(length.ok_or(Reject::AmbiguousLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Reject::UnsupportedTransferEncoding);
            }
            chunked += 1;
        }
    }
    let body_length = match (lengths.as_slice(), chunked) {
        ([], 0) => Some(0),
        // tiny_http allocates what is left of a declared body to discard it: a length of
        // terabytes would abort the process. Up to a megabyte rouille answers (413, or an
        // earlier 4xx in the contract's order); beyond, the guard does.
        ([length], 0) if *length > DECLARED_LIMIT => return Err(Reject::DeclaredTooLarge),
        ([length], 0) => Some(*length),
        ([], 1) => None,
        _ => return Err(Reject::AmbiguousLength),
    };
    let (request_line, rest) = head.split_at(head.iter().position(|&b| b == b'\n').unwrap_or(head.len()));
    let mut out = Vec::with_capacity(head.len());
    let mut parts = request_line.splitn(3, |&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version)) => {
            out.extend_from_slice(method);
            out.push(b' ');
            percent_encode_non_ascii(origin_form(target), &mut out);
            out.push(b' ');
            out.extend_from_slice(version);
        }
        _ => percent_encode_non_ascii(request_line, &mut out), // malformed: rouille answers 400
    }
    percent_encode_non_ascii(rest, &mut out);
    Ok((out, body_length))
}

/// `http://host:port/path?q` to `/path?q` (and `http://host` to `/`); anything else as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|scheme| target.get(..scheme.len()).is_some_and(|t| t.eq_ignore_ascii_case(scheme)));
    let Some(scheme) = scheme else { return target };
    let rest = &target[scheme.len()..];
    rest.iter().position(|&b| b == b'/' || b == b'?').map_or(b"/", |i| &rest[i..])
}

fn percent_encode_non_ascii(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b.is_ascii() {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes on to rouille for one request, if it is whole in `bytes`.
    fn whole(bytes: &[u8]) -> Result<Vec<u8>, Reject> {
        Request::new(0).feed(bytes).map(|(forward, _)| forward)
    }

    #[test]
    fn a_head_is_held_back_until_its_blank_line() {
        let mut r = Request::new(0);
        let start = b"POST / HTTP/1.1\r\nContent-Length: 4\r";
        assert_eq!(r.feed(start).unwrap(), (vec![], start.len()));
        assert_eq!(r.feed(b"\n\r").unwrap(), (vec![], 2));
        assert_eq!(r.feed(b"\nbo").unwrap(), (b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbo".to_vec(), 3));
        assert!(!r.is_complete());
        assert_eq!(r.feed(b"dyGET /next").unwrap(), (b"dy".to_vec(), 2), "the rest begins the next request");
        assert!(r.is_complete());
    }

    #[test]
    fn requests_without_a_body_end_with_their_head() {
        let mut r = Request::new(0);
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(r.feed(two).unwrap(), (b"GET /a HTTP/1.1\r\n\r\n".to_vec(), 19));
        assert!(r.is_complete());
    }

    #[test]
    fn a_chunked_body_is_counted_against_the_limit() {
        let mut r = Request::new(0);
        assert!(r.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").is_ok());
        assert!(r.length_unknown());
        assert_eq!(r.feed(&vec![b'x'; BODY_LIMIT]).unwrap().1, BODY_LIMIT, "a full body fits");
        assert_eq!(r.feed(&vec![b'x'; FRAMING + 1]), Err(Reject::BodyTooLarge));
    }

    #[test]
    fn a_head_over_the_limit_is_refused() {
        assert_eq!(whole(&vec![b'a'; HEAD_LIMIT + 1]), Err(Reject::HeadTooLarge));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(HEAD_LIMIT));
        assert_eq!(whole(long.as_bytes()), Err(Reject::HeadTooLarge));
        let fits = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(HEAD_LIMIT - 100));
        assert!(whole(fits.as_bytes()).is_ok());
    }

    #[test]
    fn framing_must_be_unambiguous() {
        let cases: &[(&[u8], Reject)] = &[
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Reject::AmbiguousLength),
            (
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reject::AmbiguousLength,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject::UnsupportedTransferEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", Reject::UnsupportedTransferEncoding),
            (b"POST / HTTP/1.1\r\nX: a\nContent-Length: 4\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n", Reject::DeclaredTooLarge),
        ];
        for (head, reject) in cases {
            assert_eq!(whole(head), Err(*reject), "{}", String::from_utf8_lossy(head));
        }
        assert!(whole(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").is_ok());
        assert!(whole(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").is_ok());
    }

    #[test]
    fn targets_become_origin_form_and_ascii() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET http://h:8000/health HTTP/1.1\r\n\r\n", b"GET /health HTTP/1.1\r\n\r\n"),
            (b"GET HTTPS://h/api/tasks?q=1 HTTP/1.1\r\n\r\n", b"GET /api/tasks?q=1 HTTP/1.1\r\n\r\n"),
            (b"GET http://h HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"),
            (b"GET /api/tasks?q=\xc3\xa9 HTTP/1.1\r\n\r\n", b"GET /api/tasks?q=%C3%A9 HTTP/1.1\r\n\r\n"),
            (b"GET / HTTP/1.1\r\nCookie: a=d\xc3\xa9\r\n\r\n", b"GET / HTTP/1.1\r\nCookie: a=d%C3%A9\r\n\r\n"),
            (b"GET /plain HTTP/1.1\r\n\r\n", b"GET /plain HTTP/1.1\r\n\r\n"),
        ];
        for (head, expected) in cases {
            assert_eq!(whole(head).unwrap(), *expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn rejections_are_json_errors_that_close_the_connection() {
        let response = String::from_utf8(rejection(Reject::HeadTooLarge)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("Connection: close"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "headers_too_large");
        assert!(head.contains(&format!("X-Request-Id: {}", json["request_id"].as_str().unwrap())));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
