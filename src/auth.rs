//! Bearer-token authentication: the only code that turns an `Authorization`
//! header into a [`UserId`].
//!
//! Tokens are compact JWTs: signed with HMAC-SHA256 (`HS256`) under a shared
//! secret (during a rotation the previous secret is accepted too), or, when a
//! JWKS is configured, with one of the asymmetric keys Better Auth publishes
//! (`EdDSA`, `ES256`, `RS256`, `PS256`; the keys and their checks are in
//! `jwks.rs`).
//!
//! Invariants that can be checked in this file alone:
//!
//! 1. A [`UserId`] is built in one place only (`user_id`), the last step of
//!    `Verifier::check_claims`, after the signature and every time, issuer and
//!    audience check have passed. Its field is private: no other module can
//!    forge one.
//! 2. No claim is parsed before the signature has been verified. Before that,
//!    the token is only measured (at most 8192 bytes), split into exactly three
//!    non-empty segments and base64url-decoded strictly (no padding, no `+` `/`
//!    or whitespace, no non-zero trailing bits, so each token has exactly one
//!    accepted spelling). Without a JWKS, not even the header is parsed before
//!    the MAC; with one, a header other than the two common HS256 spellings is
//!    parsed first, for `alg` and `kid` only.
//! 3. The algorithm comes from the server, never from the token alone: `HS256`
//!    is only ever checked as an HMAC under the configured secrets (never
//!    against a public key, whatever its bytes), and the other four only
//!    against the published key whose `kid` the token names, which must allow
//!    that algorithm by its type and its own `alg`. Any other `alg`, and any
//!    `crit`, is refused; `jku`, `x5u`, `jwk` and the like are never read.
//! 4. The MAC is HMAC-SHA256 over the ASCII `header.payload` text, compared in
//!    constant time by `Mac::verify_slice`, first with the current key and then
//!    with the previous one. Signature bytes are never compared with `==`.
//! 5. Claims: `exp` is required; `exp`, `nbf` and `iat` must be JSON numbers
//!    in `[0, 253402300799]` (up to 9999-12-31T23:59:59Z; fractions allowed).
//!    With leeway `L`: expired when `now >= exp + L`, not yet valid when
//!    `now + L < nbf` or `iat > now + L`. A non-finite `now` fails closed
//!    (as `Expired`).
//!    `iss` and `aud` are checked only when configured, and ignored otherwise.
//! 6. The user id is the first claim PRESENT among `sub`, `user_id`, `id`,
//!    `user.id`, `session.userId`. It must be a non-empty string of at most 255
//!    bytes, without U+0000; a present but invalid claim is rejected and never
//!    falls through to the next name.
//! 7. Every failure is one [`AuthError`] whose reason is a fixed string. Only
//!    the kind is logged, at `debug` level. The token and the keys are never
//!    logged or echoed, and `Verifier`'s `Debug` redacts the keys.
//! 8. No `unsafe`, `unwrap`, indexing or integer arithmetic: nothing in here
//!    can panic on any input.
//!
//! A header or payload that repeats a member the verifier reads is rejected
//! (RFC 7519 §4 allows rejecting or taking the last); other members are
//! skipped without being kept.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;
use sha2::Sha256;

use crate::jwks::{Alg, Jwks};

type HmacSha256 = Hmac<Sha256>;

/// Longer tokens are rejected before anything else is done with them.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 255;
/// Latest accepted NumericDate: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;
/// The headers jose (`{"alg":"HS256"}`) and PyJWT (`{"alg":"HS256","typ":"JWT"}`)
/// write, as encoded: known to pass the header check (a test shows it), so a token
/// with one of them is not decoded and parsed for it again.
const COMMON_HEADERS: [&str; 2] = ["eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"];

/// The header members the verifier reads. A member that is present is `Some`,
/// even when it is `null`.
#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<Value>,
}

/// The claims the verifier reads, present (`Some`, even when `null`) or absent.
#[derive(Deserialize)]
struct Claims {
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
    // Those that may name the user, in order of precedence.
    #[serde(default, deserialize_with = "present")]
    sub: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    user_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    /// Better Auth's cookie-cache payload: `user.id`, then `session.userId`.
    #[serde(default, deserialize_with = "present")]
    user: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    session: Option<Value>,
}

/// A member that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// An authenticated user id. Only this module can construct one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// The header is not `Bearer <token>`, or the token is not three strict
    /// base64url segments whose header and payload are JSON objects.
    Malformed,
    /// The token is longer than [`MAX_TOKEN_LEN`] bytes; it was not decoded.
    TooLong,
    /// The header's `alg` is not one accepted here (`HS256` with a secret, the four
    /// asymmetric ones with a JWKS and a key of their type), or it has a `crit` member.
    UnsupportedHeader,
    /// The signature segment is not canonical base64url, or the signature is
    /// not the key's: the MAC matches neither secret, or the public key refuses it.
    BadSignature,
    /// The token names a `kid` the JWKS has no key for (after one refetch at most).
    UnknownKey,
    /// `now >= exp + leeway`.
    Expired,
    /// `now + leeway < nbf`, or `iat > now + leeway`.
    NotYetValid,
    /// An issuer is configured and `iss` is not that string.
    WrongIssuer,
    /// An audience is configured and `aud` neither is it nor lists it.
    WrongAudience,
    /// `exp` missing, a time claim that is not an accepted number, or no
    /// valid user id.
    BadClaims,
}

impl AuthError {
    /// A short, fixed reason that is safe to send to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing bearer token",
            Self::Malformed => "malformed token",
            Self::TooLong => "token too long",
            Self::UnsupportedHeader => "unsupported token algorithm or header",
            Self::BadSignature => "invalid token signature",
            Self::UnknownKey => "unknown token signing key",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong token issuer",
            Self::WrongAudience => "wrong token audience",
            Self::BadClaims => "invalid token claims",
        }
    }

    /// Whether the request carried an `Authorization` header at all. When it
    /// did not, answer with a bare `WWW-Authenticate: Bearer`; otherwise with
    /// `Bearer error="invalid_token"`.
    pub fn token_presented(self) -> bool {
        self != Self::Missing
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AuthError {}

/// Verifies bearer tokens. Build it once at start-up and share it.
pub struct Verifier {
    /// HMAC states already keyed: the current secret first, then the previous
    /// one. Each verification clones one, so keying is paid only once. Empty:
    /// no HS256 token is accepted.
    keys: Vec<HmacSha256>,
    jwks: Option<Arc<Jwks>>,
    leeway: f64,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("jwks", &self.jwks)
            .field("leeway", &self.leeway)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Verifier {
    /// `secret` signs and verifies HS256 tokens (an empty one: none are
    /// accepted); `previous`, when set, still verifies them during a rotation.
    /// Key length and a sane leeway are checked by the config module.
    pub fn new(
        secret: &[u8],
        previous: Option<&[u8]>,
        leeway_seconds: u64,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Verifier {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail; if it
        // ever did, the key would be left out and its tokens rejected.
        let keys = std::iter::once(secret)
            .chain(previous)
            .filter(|key| !key.is_empty())
            .filter_map(|key| HmacSha256::new_from_slice(key).ok())
            .collect();
        Verifier { keys, jwks: None, leeway: leeway_seconds as f64, issuer, audience }
    }

    /// Also accepts the asymmetric tokens whose keys `jwks` publishes.
    pub fn with_jwks(self, jwks: Arc<Jwks>) -> Verifier {
        Verifier { jwks: Some(jwks), ..self }
    }

    /// The key set, when one is configured.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_deref()
    }

    /// Parses the Authorization header value (None = header absent) and verifies the token.
    pub fn authenticate(&self, authorization: Option<&str>, now: f64) -> Result<UserId, AuthError> {
        let token = bearer_token(authorization).inspect_err(log_rejection)?;
        self.verify(token, now)
    }

    /// Verifies a bare token.
    pub fn verify(&self, token: &str, now: f64) -> Result<UserId, AuthError> {
        self.check(token, now).inspect_err(log_rejection)
    }

    fn check(&self, token: &str, now: f64) -> Result<UserId, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLong);
        }
        // 1. Split and decode. A fourth segment leaves a '.' in `payload_b64`,
        //    which the base64url alphabet rejects.
        let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(AuthError::Malformed)?;
        let header = match COMMON_HEADERS.contains(&header_b64) {
            true => None,
            false => Some(decode_segment(header_b64)?),
        };
        let payload = decode_segment(payload_b64)?;
        let signature = decode_segment(signature_b64)
            .map_err(|e| if signature_b64.is_empty() { e } else { AuthError::BadSignature })?;

        // 2. Authenticate the exact bytes that were signed.
        match (&self.jwks, header) {
            // With a JWKS, an uncommon header names the algorithm and the key.
            (Some(jwks), Some(header)) => {
                let header: Header = parse_object(&header)?;
                let alg = header.alg.as_ref().and_then(Value::as_str).ok_or(AuthError::UnsupportedHeader)?;
                if header.crit.is_some() {
                    return Err(AuthError::UnsupportedHeader);
                }
                if alg == "HS256" {
                    self.check_mac(signing_input, &signature)?;
                } else {
                    let alg = Alg::parse(alg).ok_or(AuthError::UnsupportedHeader)?;
                    let kid = header.kid.as_ref().and_then(Value::as_str).ok_or(AuthError::UnknownKey)?;
                    let key = jwks.key(kid).ok_or(AuthError::UnknownKey)?;
                    if !key.allows(alg) {
                        return Err(AuthError::UnsupportedHeader);
                    }
                    if !key.verifies(alg, signing_input.as_bytes(), &signature) {
                        return Err(AuthError::BadSignature);
                    }
                }
            }
            // Otherwise HS256, and nothing is parsed before the MAC.
            (_, header) => {
                self.check_mac(signing_input, &signature)?;
                if let Some(header) = header {
                    let header: Header = parse_object(&header)?;
                    if header.alg.as_ref().and_then(Value::as_str) != Some("HS256") || header.crit.is_some() {
                        return Err(AuthError::UnsupportedHeader);
                    }
                }
            }
        }
        // 3. Only now interpret the claims.
        self.check_claims(parse_object(&payload)?, now)
    }

    /// HMAC-SHA256 under the current secret, then the previous one, in constant time.
    fn check_mac(&self, signing_input: &str, signature: &[u8]) -> Result<(), AuthError> {
        if self.keys.is_empty() {
            return Err(AuthError::UnsupportedHeader); // no secret: HS256 is not accepted
        }
        let authentic = self.keys.iter().any(|key| {
            let mac = key.clone().chain_update(signing_input.as_bytes());
            mac.verify_slice(signature).is_ok()
        });
        if authentic { Ok(()) } else { Err(AuthError::BadSignature) }
    }

    fn check_claims(&self, claims: Claims, now: f64) -> Result<UserId, AuthError> {
        let exp = numeric_date(claims.exp.as_ref())?.ok_or(AuthError::BadClaims)?;
        let nbf = numeric_date(claims.nbf.as_ref())?;
        let iat = numeric_date(claims.iat.as_ref())?;
        // All operands below are finite: a NaN `now` would make every
        // comparison false, i.e. accept, so it is refused first.
        if !now.is_finite() || now >= exp + self.leeway {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| now + self.leeway < nbf) || iat.is_some_and(|iat| iat > now + self.leeway) {
            return Err(AuthError::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && claims.iss.as_ref().and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(AuthError::WrongIssuer);
        }
        if let Some(audience) = &self.audience
            && !audience_contains(claims.aud.as_ref(), audience)
        {
            return Err(AuthError::WrongAudience);
        }
        user_id(claims)
    }
}

/// Extracts `<token>` from `Bearer <token>`: the scheme in any case, then one
/// or more spaces. Anything after the token (even whitespace) stays part of it
/// and makes it malformed.
fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let header = authorization.ok_or(AuthError::Missing)?;
    match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Bearer") => Ok(rest.trim_start_matches(' ')),
        _ => Err(AuthError::Malformed),
    }
}

/// Strict unpadded base64url (the engine rejects `=`, `+`, `/`, whitespace,
/// `.` and non-zero trailing bits). Empty segments are rejected as well.
fn decode_segment(segment: &str) -> Result<Vec<u8>, AuthError> {
    if segment.is_empty() {
        return Err(AuthError::Malformed);
    }
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthError::Malformed)
}

/// The bytes must be UTF-8 (RFC 7519 §7.2; members that are skipped are not
/// otherwise checked for it) and exactly one JSON object (an array would fill the
/// fields by position), without a repeated member of `T`. serde_json skips the
/// other members without recursion, so deep nesting cannot exhaust the stack.
fn parse_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, AuthError> {
    let json = std::str::from_utf8(json).map_err(|_| AuthError::Malformed)?;
    if json.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(AuthError::Malformed);
    }
    serde_json::from_str(json).map_err(|_| AuthError::Malformed)
}

/// An optional NumericDate claim: absent, or a number in `[0, MAX_NUMERIC_DATE]`
/// (so never NaN nor infinite). Anything else, `null` included, is rejected.
fn numeric_date(value: Option<&Value>) -> Result<Option<f64>, AuthError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(seconds) if (0.0..=MAX_NUMERIC_DATE).contains(&seconds) => Ok(Some(seconds)),
        _ => Err(AuthError::BadClaims),
    }
}

/// `aud` is the expected string, or an array with the expected string in it.
fn audience_contains(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == expected,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(expected)),
        _ => false,
    }
}

/// The first claim present among `sub`, `user_id`, `id`, `user.id` and
/// `session.userId` names the user. It must be a non-empty string of at most
/// [`MAX_USER_ID_LEN`] bytes, without U+0000 (which PostgreSQL text cannot hold).
/// A present but invalid claim (`""`, `null`, a number, too long) is rejected
/// rather than skipped, so a token cannot pick which claim is used by spoiling one.
fn user_id(claims: Claims) -> Result<UserId, AuthError> {
    let member = |object: Option<Value>, name: &str| match object {
        Some(Value::Object(mut members)) => members.remove(name),
        _ => None,
    };
    let named = (claims.sub.or(claims.user_id).or(claims.id))
        .or_else(|| member(claims.user, "id"))
        .or_else(|| member(claims.session, "userId"));
    match named {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_USER_ID_LEN && !id.contains('\0') => {
            Ok(UserId(id))
        }
        _ => Err(AuthError::BadClaims),
    }
}

fn log_rejection(error: &AuthError) {
    log::debug!("bearer authentication rejected: {error:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD_NO_PAD;

    const SECRET: &[u8] = b"current-secret-current-secret-0123456789";
    const OLD_SECRET: &[u8] = b"previous-secret-previous-secret-01234567";
    const OTHER_SECRET: &[u8] = b"unrelated-secret-unrelated-secret-012345";
    /// The pinned clock. Valid test tokens expire an hour later, at 1700003600.
    const NOW: f64 = 1_700_000_000.0;
    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
    const ISSUER: &str = "https://app.example.com";
    const AUDIENCE: &str = "todo-api";

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs already-encoded segments, so that bad encodings can carry a valid MAC.
    fn sign_segments(header_b64: &str, payload_b64: &str, key: &[u8]) -> String {
        let input = format!("{header_b64}.{payload_b64}");
        let mac = HmacSha256::new_from_slice(key).unwrap().chain_update(&input);
        format!("{input}.{}", b64(mac.finalize().into_bytes()))
    }

    fn sign(header_json: &str, payload_json: &str, key: &[u8]) -> String {
        sign_segments(&b64(header_json), &b64(payload_json), key)
    }

    /// Claims for user "alice", valid at NOW, followed by `extra` (",\"k\":v" pairs).
    fn alice(extra: &str) -> String {
        format!(r#"{{"sub":"alice","exp":1700003600{extra}}}"#)
    }

    /// The header, payload and signature segments of a token.
    fn segments(token: &str) -> (&str, &str, &str) {
        let (input, signature) = token.rsplit_once('.').unwrap();
        let (header, payload) = input.split_once('.').unwrap();
        (header, payload, signature)
    }

    /// A valid token of exactly `len` bytes, padded through a claim and header whitespace.
    fn token_of_len(len: usize) -> String {
        for spaces in 0..3 {
            let header = format!(r#"{{"alg":"HS256"{}}}"#, " ".repeat(spaces));
            for pad in 0..len {
                let payload = alice(&format!(r#","pad":"{}""#, "x".repeat(pad)));
                let encoded = |json: &str| base64::encoded_len(json.len(), false).unwrap();
                // Two dots and a 43-character signature.
                let total = encoded(&header) + encoded(&payload) + 45;
                if total == len {
                    let token = sign(&header, &payload, SECRET);
                    assert_eq!(token.len(), len);
                    return token;
                }
                if total > len {
                    break;
                }
            }
        }
        panic!("no token of length {len}");
    }

    /// Respells the last character of a base64url segment so that only its
    /// unused trailing bits change: same bytes, non-canonical text.
    fn with_trailing_bits_set(segment: &str) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        assert_ne!(segment.len() % 4, 0, "segment has no trailing bits");
        let (head, last) = segment.split_at(segment.len() - 1);
        let index = ALPHABET.iter().position(|&c| c == last.as_bytes()[0]).unwrap();
        format!("{head}{}", char::from(ALPHABET[index ^ 1]))
    }

    #[test]
    #[rustfmt::skip]
    fn hostile_and_malformed_tokens() {
        use AuthError::*;
        let v = Verifier::new(SECRET, None, 30, None, None);
        let rot = Verifier::new(SECRET, Some(OLD_SECRET), 30, None, None);
        let strict = Verifier::new(SECRET, None, 30, Some(ISSUER.into()), Some(AUDIENCE.into()));

        let good = sign(HS256, &alice(""), SECRET);
        let (h64, p64, s64) = segments(&good);
        let sig = URL_SAFE_NO_PAD.decode(s64).unwrap();
        let ok = |id: &str| Ok(id.to_owned());
        let header = |value: &str| Some(value.to_owned());
        // Bearer header around a token; then tokens signed with SECRET from
        // raw segments, a header (alice's claims), claims, alice plus extra
        // claims, a `sub` value, or with `good`'s signature replaced.
        let b = |token: &str| Some(format!("Bearer {token}"));
        let raw = |header_b64: &str, payload_b64: &str| b(&sign_segments(header_b64, payload_b64, SECRET));
        let h = |header_json: &str| b(&sign(header_json, &alice(""), SECRET));
        let c = |claims_json: &str| b(&sign(HS256, claims_json, SECRET));
        let a = |extra: &str| c(&alice(extra));
        let sub = |value: &str| c(&format!(r#"{{"sub":{value},"exp":1700003600}}"#));
        let with_sig = |signature: &[u8]| b(&format!("{h64}.{p64}.{}", b64(signature)));
        let quoted = |s: String| format!("\"{s}\"");

        // Payload segments that are only accepted spelled canonically.
        let slashy = alice(r#","x":"?????????>>>>>>>>>""#); // holds aligned "???" and ">>>"
        let std_b64 = STANDARD_NO_PAD.encode(&slashy);
        assert!(std_b64.contains('+') && std_b64.contains('/'));
        let odd_b64 = b64(alice(r#","x":"1""#));

        // (name, verifier, Authorization header, expected user id or error)
        type Case<'a> = (&'a str, &'a Verifier, Option<String>, Result<String, AuthError>);
        let cases: Vec<Case> = vec![
            // The Authorization header.
            ("valid token", &v, b(&good), ok("alice")),
            ("no header", &v, None, Err(Missing)),
            ("empty header", &v, header(""), Err(Malformed)),
            ("scheme alone", &v, header("Bearer"), Err(Malformed)),
            ("scheme and one space", &v, header("Bearer "), Err(Malformed)),
            ("scheme and spaces", &v, header("Bearer    "), Err(Malformed)),
            ("basic scheme", &v, header("Basic dXNlcjpwYXNz"), Err(Malformed)),
            ("other scheme with a jwt", &v, header(&format!("Token {good}")), Err(Malformed)),
            ("scheme with a colon", &v, header(&format!("Bearer: {good}")), Err(Malformed)),
            ("longer scheme", &v, header(&format!("Bearers {good}")), Err(Malformed)),
            ("lowercase scheme, three spaces", &v, header(&format!("bearer   {good}")), ok("alice")),
            ("uppercase scheme", &v, header(&format!("BEARER {good}")), ok("alice")),
            ("tab separator", &v, header(&format!("Bearer\t{good}")), Err(Malformed)),
            ("leading space", &v, header(&format!(" Bearer {good}")), Err(Malformed)),
            // Whatever follows the token is part of its signature segment, which is then not
            // base64url: read as a signature failure.
            ("trailing space", &v, header(&format!("Bearer {good} ")), Err(BadSignature)),
            ("trailing newline", &v, header(&format!("Bearer {good}\n")), Err(BadSignature)),
            ("second word", &v, header(&format!("Bearer {good} x")), Err(BadSignature)),
            ("two tokens", &v, header(&format!("Bearer {good},{good}")), Err(Malformed)),
            // Segments.
            ("only dots", &v, b(".."), Err(Malformed)),
            ("one segment", &v, b(h64), Err(Malformed)),
            ("two segments", &v, b(&format!("{h64}.{p64}")), Err(Malformed)),
            ("four segments", &v, b(&format!("{good}.{s64}")), Err(Malformed)),
            ("empty signature", &v, b(&format!("{h64}.{p64}.")), Err(Malformed)),
            ("empty header", &v, b(&format!(".{p64}.{s64}")), Err(Malformed)),
            ("empty payload, signed", &v, raw(h64, ""), Err(Malformed)),
            ("double dot", &v, b(&format!("{h64}..{p64}.{s64}")), Err(Malformed)),
            // Base64url strictness: nothing but the canonical spelling.
            ("padded signature", &v, b(&format!("{good}=")), Err(BadSignature)),
            ("padded payload, signed", &v, raw(h64, &format!("{p64}=")), Err(Malformed)),
            ("standard alphabet, signed", &v, raw(h64, &std_b64), Err(Malformed)),
            ("'+' in signature", &v, b(&format!("{h64}.{p64}.+{}", &s64[1..])), Err(BadSignature)),
            ("'/' in signature", &v, b(&format!("{h64}.{p64}./{}", &s64[1..])), Err(BadSignature)),
            ("space in payload", &v, b(&format!("{h64}.{} {}.{s64}", &p64[..8], &p64[8..])), Err(Malformed)),
            ("newline in signature", &v, b(&format!("{h64}.{p64}.{}\n{}", &s64[..8], &s64[8..])), Err(BadSignature)),
            ("signature trailing bits", &v, b(&format!("{h64}.{p64}.{}", with_trailing_bits_set(s64))), Err(BadSignature)),
            ("payload trailing bits, signed", &v, raw(h64, &with_trailing_bits_set(&odd_b64)), Err(Malformed)),
            ("the same payload, canonical", &v, raw(h64, &odd_b64), ok("alice")),
            // JSON shape, signed with the right key.
            ("header not JSON", &v, h("alg=HS256"), Err(Malformed)),
            ("header array", &v, h(r#"["HS256"]"#), Err(Malformed)),
            ("header string", &v, h(r#""HS256""#), Err(Malformed)),
            ("header number", &v, h("256"), Err(Malformed)),
            ("payload not JSON", &v, c("sub=alice"), Err(Malformed)),
            ("payload array", &v, c(&format!("[{}]", alice(""))), Err(Malformed)),
            ("payload string", &v, c(r#""alice""#), Err(Malformed)),
            ("payload number", &v, c("1700003600"), Err(Malformed)),
            ("payload null", &v, c("null"), Err(Malformed)),
            ("payload trailing data", &v, c(&format!("{} {{}}", alice(""))), Err(Malformed)),
            ("payload not UTF-8", &v, raw(h64, &b64(b"{\"sub\":\"\xff\",\"exp\":1700003600}")), Err(Malformed)),
            // Header parameters.
            ("alg none, no signature", &v, b(&format!("{}.{p64}.", b64(r#"{"alg":"none"}"#))), Err(Malformed)),
            ("alg none, old signature", &v, b(&format!("{}.{p64}.{s64}", b64(r#"{"alg":"none"}"#))), Err(BadSignature)),
            ("alg none, valid MAC", &v, h(r#"{"alg":"none"}"#), Err(UnsupportedHeader)),
            ("alg None, valid MAC", &v, h(r#"{"alg":"None"}"#), Err(UnsupportedHeader)),
            ("alg RS256, valid MAC", &v, h(r#"{"alg":"RS256","typ":"JWT"}"#), Err(UnsupportedHeader)),
            ("alg HS512, valid MAC", &v, h(r#"{"alg":"HS512","typ":"JWT"}"#), Err(UnsupportedHeader)),
            ("alg ES256, valid MAC", &v, h(r#"{"alg":"ES256","typ":"JWT"}"#), Err(UnsupportedHeader)),
            ("alg hs256, valid MAC", &v, h(r#"{"alg":"hs256","typ":"JWT"}"#), Err(UnsupportedHeader)),
            ("alg 'HS256 ', valid MAC", &v, h(r#"{"alg":"HS256 "}"#), Err(UnsupportedHeader)),
            ("alg missing, valid MAC", &v, h(r#"{"typ":"JWT"}"#), Err(UnsupportedHeader)),
            ("alg null, valid MAC", &v, h(r#"{"alg":null}"#), Err(UnsupportedHeader)),
            ("alg array, valid MAC", &v, h(r#"{"alg":["HS256"]}"#), Err(UnsupportedHeader)),
            ("crit list, valid MAC", &v, h(r#"{"alg":"HS256","crit":["exp"]}"#), Err(UnsupportedHeader)),
            ("crit empty, valid MAC", &v, h(r#"{"alg":"HS256","crit":[]}"#), Err(UnsupportedHeader)),
            ("crit null, valid MAC", &v, h(r#"{"alg":"HS256","crit":null}"#), Err(UnsupportedHeader)),
            ("two algs, none last", &v, h(r#"{"alg":"HS256","alg":"none"}"#), Err(Malformed)),
            ("two algs, HS256 last", &v, h(r#"{"alg":"none","alg":"HS256"}"#), Err(Malformed)),
            ("two subs", &v, c(r#"{"sub":"bob","sub":"alice","exp":1700003600}"#), Err(Malformed)),
            ("invalid UTF-8 in a skipped claim", &v, raw(h64, &b64(b"{\"sub\":\"alice\",\"exp\":1700003600,\"x\":\"\xff\"}")), Err(Malformed)),
            ("invalid UTF-8 in a header", &v, raw(&b64(b"{\"alg\":\"HS256\",\"x\":\"\xff\"}"), p64), Err(Malformed)),
            ("an array payload", &v, c(r#"[1700003600,1700000000,1700000000,"i","a","alice"]"#), Err(Malformed)),
            ("alg spelled with escapes", &v, h(r#"{"alg":"HS\u0032\u0035\u0036"}"#), ok("alice")),
            ("no typ", &v, h(r#"{"alg":"HS256"}"#), ok("alice")),
            ("other typ, kid", &v, h(r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#), ok("alice")),
            // The signature.
            ("tampered payload", &v, b(&format!("{h64}.{}.{s64}", b64(r#"{"sub":"admin","exp":4102444800}"#))), Err(BadSignature)),
            ("tampered header", &v, b(&format!("{}.{p64}.{s64}", b64(r#"{"alg":"HS256"}"#))), Err(BadSignature)),
            ("signature cut to 31 bytes", &v, with_sig(&sig[..31]), Err(BadSignature)),
            ("signature cut to 16 bytes", &v, with_sig(&sig[..16]), Err(BadSignature)),
            ("signature plus a byte", &v, with_sig(&[&sig[..], &[0]].concat()), Err(BadSignature)),
            ("signature twice", &v, with_sig(&sig.repeat(2)), Err(BadSignature)),
            ("signature all zero", &v, with_sig(&[0; 32]), Err(BadSignature)),
            ("another token's signature", &v, with_sig(segments(&sign(HS256, &alice(",\"x\":1"), SECRET)).2.as_bytes()), Err(BadSignature)),
            ("wrong secret", &v, b(&sign(HS256, &alice(""), OTHER_SECRET)), Err(BadSignature)),
            ("empty secret", &v, b(&sign(HS256, &alice(""), b"")), Err(BadSignature)),
            ("previous secret, no rotation", &v, b(&sign(HS256, &alice(""), OLD_SECRET)), Err(BadSignature)),
            ("previous secret, rotating", &rot, b(&sign(HS256, &alice(""), OLD_SECRET)), ok("alice")),
            ("current secret, rotating", &rot, b(&good), ok("alice")),
            ("neither secret, rotating", &rot, b(&sign(HS256, &alice(""), OTHER_SECRET)), Err(BadSignature)),
            ("MAC before exp", &v, b(&sign(HS256, r#"{"sub":"alice","exp":1}"#, OTHER_SECRET)), Err(BadSignature)),
            ("MAC before alg", &v, b(&sign(r#"{"alg":"none"}"#, &alice(""), OTHER_SECRET)), Err(BadSignature)),
            ("MAC before JSON", &v, b(&sign_segments(h64, &b64("not json"), OTHER_SECRET)), Err(BadSignature)),
            // exp.
            ("exp missing", &v, c(r#"{"sub":"alice"}"#), Err(BadClaims)),
            ("exp string", &v, c(r#"{"sub":"alice","exp":"1700003600"}"#), Err(BadClaims)),
            ("exp fractional", &v, c(r#"{"sub":"alice","exp":1700003600.5}"#), ok("alice")),
            ("exp with exponent", &v, c(r#"{"sub":"alice","exp":1.7000036e9}"#), ok("alice")),
            ("exp at the maximum", &v, c(r#"{"sub":"alice","exp":253402300799}"#), ok("alice")),
            ("exp past the maximum", &v, c(r#"{"sub":"alice","exp":253402300800}"#), Err(BadClaims)),
            ("exp huge", &v, c(r#"{"sub":"alice","exp":1e300}"#), Err(BadClaims)),
            ("exp u64::MAX", &v, c(r#"{"sub":"alice","exp":18446744073709551615}"#), Err(BadClaims)),
            ("exp beyond f64", &v, c(r#"{"sub":"alice","exp":1e999}"#), Err(Malformed)),
            ("exp negative", &v, c(r#"{"sub":"alice","exp":-1}"#), Err(BadClaims)),
            ("exp NaN literal", &v, c(r#"{"sub":"alice","exp":NaN}"#), Err(Malformed)),
            ("exp Infinity literal", &v, c(r#"{"sub":"alice","exp":Infinity}"#), Err(Malformed)),
            ("exp NaN string", &v, c(r#"{"sub":"alice","exp":"NaN"}"#), Err(BadClaims)),
            ("exp null", &v, c(r#"{"sub":"alice","exp":null}"#), Err(BadClaims)),
            ("exp bool", &v, c(r#"{"sub":"alice","exp":true}"#), Err(BadClaims)),
            ("exp object", &v, c(r#"{"sub":"alice","exp":{"t":1700003600}}"#), Err(BadClaims)),
            ("exp zero", &v, c(r#"{"sub":"alice","exp":0}"#), Err(Expired)),
            ("exp past the leeway", &v, c(r#"{"sub":"alice","exp":1699999969}"#), Err(Expired)),
            ("exp + leeway == now", &v, c(r#"{"sub":"alice","exp":1699999970}"#), Err(Expired)),
            ("exp within the leeway", &v, c(r#"{"sub":"alice","exp":1699999970.5}"#), ok("alice")),
            ("expired, also no user", &v, c(r#"{"sub":"","exp":1}"#), Err(Expired)),
            // nbf and iat.
            ("nbf in the future", &v, a(r#","nbf":1700000031"#), Err(NotYetValid)),
            ("nbf within the leeway", &v, a(r#","nbf":1700000030"#), ok("alice")),
            ("nbf past", &v, a(r#","nbf":1600000000"#), ok("alice")),
            ("nbf string", &v, a(r#","nbf":"1600000000""#), Err(BadClaims)),
            ("nbf null", &v, a(r#","nbf":null"#), Err(BadClaims)),
            ("iat in the future", &v, a(r#","iat":1700000031"#), Err(NotYetValid)),
            ("iat within the leeway", &v, a(r#","iat":1700000030"#), ok("alice")),
            ("iat past, fractional", &v, a(r#","iat":1699999999.25"#), ok("alice")),
            ("iat bool", &v, a(r#","iat":false"#), Err(BadClaims)),
            ("iat negative", &v, a(r#","iat":-5"#), Err(BadClaims)),
            // The user id.
            ("sub empty", &v, sub(r#""""#), Err(BadClaims)),
            ("sub number", &v, sub("42"), Err(BadClaims)),
            ("sub with U+0000", &v, sub(r#""a\u0000b""#), Err(BadClaims)),
            ("id with U+0000, no sub", &v, c(r#"{"id":"\u0000","exp":1700003600}"#), Err(BadClaims)),
            ("sub null", &v, sub("null"), Err(BadClaims)),
            ("sub array", &v, sub(r#"["alice"]"#), Err(BadClaims)),
            ("sub object", &v, sub(r#"{"id":"alice"}"#), Err(BadClaims)),
            ("sub 255 bytes", &v, sub(&quoted("a".repeat(255))), ok(&"a".repeat(255))),
            ("sub 256 bytes", &v, sub(&quoted("a".repeat(256))), Err(BadClaims)),
            ("sub 254 bytes of 'é'", &v, sub(&quoted("é".repeat(127))), ok(&"é".repeat(127))),
            ("sub 256 bytes of 'é'", &v, sub(&quoted("é".repeat(128))), Err(BadClaims)),
            ("sub escaped", &v, sub(r#""al\u0069ce""#), ok("alice")),
            ("sub 1 MB", &v, sub(&quoted("a".repeat(1 << 20))), Err(TooLong)),
            ("no user id claim", &v, c(r#"{"exp":1700003600}"#), Err(BadClaims)),
            ("user_id, sub absent", &v, c(r#"{"user_id":"u1","id":"i1","exp":1700003600}"#), ok("u1")),
            ("id, sub and user_id absent", &v, c(r#"{"id":"i1","user":{"id":"i1"},"exp":1700003600}"#), ok("i1")),
            ("sub first", &v, c(r#"{"id":"i1","user_id":"u1","sub":"alice","exp":1700003600}"#), ok("alice")),
            ("sub null, no fallback", &v, c(r#"{"sub":null,"user_id":"u1","id":"i1","exp":1700003600}"#), Err(BadClaims)),
            ("sub empty, no fallback", &v, c(r#"{"sub":"","id":"i1","exp":1700003600}"#), Err(BadClaims)),
            ("user_id number, no fallback", &v, c(r#"{"user_id":7,"id":"i1","exp":1700003600}"#), Err(BadClaims)),
            ("id number", &v, c(r#"{"id":7,"exp":1700003600}"#), Err(BadClaims)),
            // Better Auth's cookie-cache payload: user.id, then session.userId.
            ("user.id", &v, c(r#"{"user":{"id":"u7","email":"a@b"},"session":{"userId":"s7"},"exp":1700003600}"#), ok("u7")),
            ("session.userId", &v, c(r#"{"session":{"userId":"s7","token":"t"},"exp":1700003600}"#), ok("s7")),
            ("user without id, session.userId", &v, c(r#"{"user":{"name":"x"},"session":{"userId":"s7"},"exp":1700003600}"#), ok("s7")),
            ("user not an object", &v, c(r#"{"user":"u7","session":{"userId":"s7"},"exp":1700003600}"#), ok("s7")),
            ("id before user.id", &v, c(r#"{"id":"i1","user":{"id":"u7"},"exp":1700003600}"#), ok("i1")),
            ("user.id null, no fallback", &v, c(r#"{"user":{"id":null},"session":{"userId":"s7"},"exp":1700003600}"#), Err(BadClaims)),
            ("user.id empty, no fallback", &v, c(r#"{"user":{"id":""},"session":{"userId":"s7"},"exp":1700003600}"#), Err(BadClaims)),
            ("session.userId number", &v, c(r#"{"session":{"userId":7},"exp":1700003600}"#), Err(BadClaims)),
            // Size.
            ("exactly 8192 bytes", &v, b(&token_of_len(MAX_TOKEN_LEN)), ok("alice")),
            ("8193 bytes", &v, b(&token_of_len(MAX_TOKEN_LEN + 1)), Err(TooLong)),
            ("8193 bytes of junk", &v, b(&"!".repeat(MAX_TOKEN_LEN + 1)), Err(TooLong)),
            // Issuer and audience: checked only when configured.
            ("iss and aud match", &strict, a(r#","iss":"https://app.example.com","aud":"todo-api""#), ok("alice")),
            ("aud array has it", &strict, a(r#","iss":"https://app.example.com","aud":["web","todo-api"]"#), ok("alice")),
            ("iss wrong", &strict, a(r#","iss":"https://evil.example.com","aud":"todo-api""#), Err(WrongIssuer)),
            ("iss other case", &strict, a(r#","iss":"https://APP.example.com","aud":"todo-api""#), Err(WrongIssuer)),
            ("iss missing", &strict, a(r#","aud":"todo-api""#), Err(WrongIssuer)),
            ("iss in an array", &strict, a(r#","iss":["https://app.example.com"],"aud":"todo-api""#), Err(WrongIssuer)),
            ("aud wrong", &strict, a(r#","iss":"https://app.example.com","aud":"todo-api-admin""#), Err(WrongAudience)),
            ("aud array lacks it", &strict, a(r#","iss":"https://app.example.com","aud":["web"]"#), Err(WrongAudience)),
            ("aud empty array", &strict, a(r#","iss":"https://app.example.com","aud":[]"#), Err(WrongAudience)),
            ("aud missing", &strict, a(r#","iss":"https://app.example.com""#), Err(WrongAudience)),
            ("aud number", &strict, a(r#","iss":"https://app.example.com","aud":1"#), Err(WrongAudience)),
            ("iss, aud ignored if unset", &v, a(r#","iss":42,"aud":{"x":null}"#), ok("alice")),
        ];
        assert!(cases.len() >= 40);
        for (name, verifier, authorization, expected) in cases {
            let got = verifier.authenticate(authorization.as_deref(), NOW);
            assert_eq!(got.map(|id| id.as_str().to_owned()), expected, "case {name:?}");
        }
    }

    /// Asymmetric tokens, with a JWKS: the key comes from the set by `kid`, the algorithm must
    /// be one its type (and its own `alg`) allows, and nothing in the header can change that.
    #[test]
    #[rustfmt::skip]
    fn hostile_asymmetric_tokens() {
        use crate::jwks::test_keys::{TestKey, set};
        use AuthError::*;
        use serde_json::json;
        let (ed, ec, rsa) = (TestKey::ed25519("ed"), TestKey::p256("ec"), TestKey::rsa("rsa", 2048));
        let impostor = TestKey::ed25519("ed"); // the same kid, another key
        let small = TestKey::rsa("small", 1024);
        let mut rs256_only = rsa.jwk();
        rs256_only["kid"] = json!("rs256-only");
        rs256_only["alg"] = json!("RS256");
        let mut encryption = ed.jwk();
        encryption["kid"] = json!("enc");
        encryption["use"] = json!("enc");
        let mut p384 = ec.jwk();
        p384["kid"] = json!("p384");
        p384["crv"] = json!("P-384");
        let mut off_curve = ec.jwk();
        off_curve["kid"] = json!("off-curve");
        off_curve["y"] = off_curve["x"].clone();
        let keys = set(&[ed.jwk(), ec.jwk(), rsa.jwk(), small.jwk(), rs256_only, encryption, p384, off_curve]);
        let both = Verifier::new(SECRET, None, 30, None, None).with_jwks(Arc::clone(&keys));
        let jwks_only = Verifier::new(&[], None, 30, None, None).with_jwks(Arc::clone(&keys));
        let hs_only = Verifier::new(SECRET, None, 30, None, None);

        let header = |alg: &str, kid: &str| format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#);
        let token = |key: &TestKey, alg: &str, kid: &str| key.token(alg, &header(alg, kid), &alice(""));
        let resigned = |token: &str, signature: &[u8]| format!("{}.{}", token.rsplit_once('.').unwrap().0, b64(signature));
        let ok = |id: &str| Ok(id.to_owned());
        // An ES256 signature in DER, and with S replaced by n - S (its twin, also valid).
        let es256 = token(&ec, "ES256", "ec");
        let raw = URL_SAFE_NO_PAD.decode(es256.rsplit_once('.').unwrap().1).unwrap();
        let (r, s) = (openssl::bn::BigNum::from_slice(&raw[..32]).unwrap(), openssl::bn::BigNum::from_slice(&raw[32..]).unwrap());
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let (mut n, mut high) = (openssl::bn::BigNum::new().unwrap(), openssl::bn::BigNum::new().unwrap());
        group.order(&mut n, &mut openssl::bn::BigNumContext::new().unwrap()).unwrap();
        high.checked_sub(&n, &s).unwrap();
        let der = openssl::ecdsa::EcdsaSig::from_private_components(r.to_owned().unwrap(), s.to_owned().unwrap()).unwrap().to_der().unwrap();
        let high_s = [r.to_vec_padded(32).unwrap(), high.to_vec_padded(32).unwrap()].concat();
        // HS256 tokens whose secret is the public key, as bytes, PEM or JWK text.
        let confused = |secret: &[u8]| sign(&header("HS256", "ed"), &alice(""), secret);
        let ed_raw = URL_SAFE_NO_PAD.decode(ed.jwk()["x"].as_str().unwrap()).unwrap();

        type Case<'a> = (&'a str, &'a Verifier, String, Result<String, AuthError>);
        let cases: Vec<Case> = vec![
            ("EdDSA", &both, token(&ed, "EdDSA", "ed"), ok("alice")),
            ("ES256", &both, es256.clone(), ok("alice")),
            ("RS256", &both, token(&rsa, "RS256", "rsa"), ok("alice")),
            ("PS256", &both, token(&rsa, "PS256", "rsa"), ok("alice")),
            ("EdDSA, no secret", &jwks_only, token(&ed, "EdDSA", "ed"), ok("alice")),
            ("EdDSA with typ", &both, ed.token("EdDSA", r#"{"alg":"EdDSA","kid":"ed","typ":"JWT"}"#, &alice("")), ok("alice")),
            ("HS256 beside a JWKS", &both, sign(HS256, &alice(""), SECRET), ok("alice")),
            ("HS256 with a kid", &both, sign(&header("HS256", "ed"), &alice(""), SECRET), ok("alice")),
            ("HS256, no secret", &jwks_only, sign(HS256, &alice(""), SECRET), Err(UnsupportedHeader)),
            ("HS256 with a kid, no secret", &jwks_only, sign(&header("HS256", "ed"), &alice(""), SECRET), Err(UnsupportedHeader)),
            // Algorithm confusion: HS256 is an HMAC under our secret only.
            ("HS256 keyed with the public key's bytes", &both, confused(&ed_raw), Err(BadSignature)),
            ("HS256 keyed with its PEM", &both, confused(&ed.public_pem()), Err(BadSignature)),
            ("HS256 keyed with its JWK", &both, confused(ed.jwk().to_string().as_bytes()), Err(BadSignature)),
            ("HS256 keyed with its JWK, no secret", &jwks_only, confused(ed.jwk().to_string().as_bytes()), Err(UnsupportedHeader)),
            ("alg none", &both, resigned(&token(&ed, "EdDSA", "ed"), b"x").replace(&b64(header("EdDSA", "ed")), &b64(header("none", "ed"))), Err(UnsupportedHeader)),
            ("alg HS512", &both, sign(&header("HS512", "ed"), &alice(""), SECRET), Err(UnsupportedHeader)),
            ("alg ES512", &both, token(&ec, "ES256", "ec").replace(&b64(header("ES256", "ec")), &b64(header("ES512", "ec"))), Err(UnsupportedHeader)),
            ("alg eddsa", &both, ed.token("EdDSA", &header("eddsa", "ed"), &alice("")), Err(UnsupportedHeader)),
            ("crit", &both, ed.token("EdDSA", r#"{"alg":"EdDSA","kid":"ed","crit":["x"]}"#, &alice("")), Err(UnsupportedHeader)),
            ("two algs", &both, ed.token("EdDSA", r#"{"alg":"HS256","alg":"EdDSA","kid":"ed"}"#, &alice("")), Err(Malformed)),
            // The key.
            ("unknown kid", &both, token(&ed, "EdDSA", "nobody"), Err(UnknownKey)),
            ("no kid", &both, ed.token("EdDSA", r#"{"alg":"EdDSA"}"#, &alice("")), Err(UnknownKey)),
            ("kid a number", &both, ed.token("EdDSA", r#"{"alg":"EdDSA","kid":7}"#, &alice("")), Err(UnknownKey)),
            ("ES256 naming the Ed25519 key", &both, token(&ec, "ES256", "ed"), Err(UnsupportedHeader)),
            ("EdDSA naming the RSA key", &both, token(&ed, "EdDSA", "rsa"), Err(UnsupportedHeader)),
            ("RS256 naming the P-256 key", &both, token(&rsa, "RS256", "ec"), Err(UnsupportedHeader)),
            ("PS256 for a key published for RS256", &both, token(&rsa, "PS256", "rs256-only"), Err(UnsupportedHeader)),
            ("RS256 for a key published for RS256", &both, token(&rsa, "RS256", "rs256-only"), ok("alice")),
            ("a key for encryption", &both, token(&ed, "EdDSA", "enc"), Err(UnknownKey)),
            ("a P-384 key", &both, token(&ec, "ES256", "p384"), Err(UnknownKey)),
            ("a point off the curve", &both, token(&ec, "ES256", "off-curve"), Err(UnknownKey)),
            ("an RSA key of 1024 bits", &both, token(&small, "RS256", "small"), Err(UnknownKey)),
            ("another key under the kid", &both, token(&impostor, "EdDSA", "ed"), Err(BadSignature)),
            ("a jwk in the header", &both, impostor.token("EdDSA", &format!(r#"{{"alg":"EdDSA","kid":"ed","jwk":{}}}"#, impostor.jwk()), &alice("")), Err(BadSignature)),
            ("jku and x5u in the header", &both, impostor.token("EdDSA", r#"{"alg":"EdDSA","kid":"ed","jku":"https://evil/jwks","x5u":"https://evil/c"}"#, &alice("")), Err(BadSignature)),
            ("jku, unknown kid", &both, impostor.token("EdDSA", r#"{"alg":"EdDSA","kid":"evil","jku":"https://evil/jwks"}"#, &alice("")), Err(UnknownKey)),
            // The signature.
            ("ES256 in DER", &both, resigned(&es256, &der), Err(BadSignature)),
            // Signers leave S in either half of the order: the twin is the same token.
            ("ES256 with the other S", &both, resigned(&es256, &high_s), ok("alice")),
            ("ES256 cut to 63 bytes", &both, resigned(&es256, &raw[..63]), Err(BadSignature)),
            ("ES256 plus a byte", &both, resigned(&es256, &[&raw[..], &[0]].concat()), Err(BadSignature)),
            ("PS256 header on an RS256 signature", &both, resigned(&token(&rsa, "PS256", "rsa"), &rsa.sign("RS256", format!("{}.{}", b64(header("PS256", "rsa")), b64(alice(""))).as_bytes())), Err(BadSignature)),
            ("EdDSA signature cut", &both, { let t = token(&ed, "EdDSA", "ed"); let sig = URL_SAFE_NO_PAD.decode(t.rsplit_once('.').unwrap().1).unwrap(); resigned(&t, &sig[..63]) }, Err(BadSignature)),
            ("tampered payload", &both, { let t = token(&ed, "EdDSA", "ed"); let (h, _, s) = segments(&t); format!("{h}.{}.{s}", b64(r#"{"sub":"admin","exp":4102444800}"#)) }, Err(BadSignature)),
            ("signature not base64url", &both, format!("{}!", token(&ed, "EdDSA", "ed")), Err(BadSignature)),
            ("EdDSA without a JWKS", &hs_only, token(&ed, "EdDSA", "ed"), Err(BadSignature)),
            // Claims, as for HS256.
            ("EdDSA expired", &both, ed.token("EdDSA", &header("EdDSA", "ed"), r#"{"sub":"alice","exp":1}"#), Err(Expired)),
            ("EdDSA not yet valid", &both, ed.token("EdDSA", &header("EdDSA", "ed"), &alice(r#","nbf":1800000000"#)), Err(NotYetValid)),
            ("EdDSA without a user", &both, ed.token("EdDSA", &header("EdDSA", "ed"), r#"{"exp":1700003600}"#), Err(BadClaims)),
            ("EdDSA, Better Auth payload", &both, ed.token("EdDSA", &header("EdDSA", "ed"), r#"{"id":"u1","name":"Ada","sub":"u1","exp":1700003600,"iss":"http://localhost:3000","aud":"http://localhost:3000"}"#), ok("u1")),
        ];
        for (name, verifier, token, expected) in cases {
            let got = verifier.verify(&token, NOW);
            assert_eq!(got.map(|id| id.as_str().to_owned()), expected, "case {name:?}");
        }
    }

    #[test]
    fn the_common_headers_pass_the_full_header_check() {
        for encoded in COMMON_HEADERS {
            let header: Header = parse_object(&decode_segment(encoded).unwrap()).unwrap();
            assert_eq!(header.alg, Some(Value::from("HS256")), "{encoded}");
            assert!(header.crit.is_none(), "{encoded}");
        }
    }

    #[test]
    fn verify_takes_the_bare_token() {
        let v = Verifier::new(SECRET, None, 30, None, None);
        let token = sign(HS256, &alice(""), SECRET);
        assert_eq!(v.verify(&token, NOW).unwrap().as_str(), "alice");
        assert_eq!(v.verify("", NOW), Err(AuthError::Malformed));
        assert_eq!(v.verify(&format!("Bearer {token}"), NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn leeway_is_configurable() {
        let token = sign(HS256, &alice(r#","nbf":1700000100"#), SECRET);
        let strict = Verifier::new(SECRET, None, 0, None, None);
        let lenient = Verifier::new(SECRET, None, 120, None, None);
        assert_eq!(strict.verify(&token, NOW), Err(AuthError::NotYetValid));
        assert_eq!(lenient.verify(&token, NOW).unwrap().as_str(), "alice");
        assert_eq!(strict.verify(&token, 1_700_003_599.9).unwrap().as_str(), "alice");
        assert_eq!(strict.verify(&token, 1_700_003_600.0), Err(AuthError::Expired));
        assert_eq!(lenient.verify(&token, 1_700_003_719.9).unwrap().as_str(), "alice");
        assert_eq!(lenient.verify(&token, 1_700_003_720.0), Err(AuthError::Expired));
    }

    #[test]
    fn non_finite_now_fails_closed() {
        let v = Verifier::new(SECRET, None, 30, None, None);
        let token = sign(HS256, &alice(""), SECRET);
        for now in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(v.verify(&token, now), Err(AuthError::Expired), "now = {now}");
        }
    }

    /// RFC 7515, Appendix A.1: the example JWS using HMAC SHA-256.
    #[test]
    fn rfc7515_appendix_a1() {
        const TOKEN: &str = concat!(
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
            ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
            "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
            ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        );
        const JWK_K: &str =
            concat!("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75", "aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",);
        const EXP: f64 = 1_300_819_380.0;
        let (header, payload, _) = segments(TOKEN);
        let header = URL_SAFE_NO_PAD.decode(header).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
        assert_eq!(header, b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
        let claims = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
        assert_eq!(payload, claims.as_bytes());
        let key = URL_SAFE_NO_PAD.decode(JWK_K).unwrap();
        let v = Verifier::new(&key, None, 30, None, None);

        // MAC, header and times pass; the only fault is that no claim names a user.
        assert_eq!(v.verify(TOKEN, 1_300_819_000.0), Err(AuthError::BadClaims));
        assert_eq!(v.verify(TOKEN, EXP + 29.9), Err(AuthError::BadClaims));
        let joe = Verifier::new(&key, None, 30, Some("joe".into()), None);
        assert_eq!(joe.verify(TOKEN, 1_300_819_000.0), Err(AuthError::BadClaims));
        let not_joe = Verifier::new(&key, None, 30, Some("jo".into()), None);
        assert_eq!(not_joe.verify(TOKEN, 1_300_819_000.0), Err(AuthError::WrongIssuer));
        // Expired once the leeway is over, and at the real current time.
        assert_eq!(v.verify(TOKEN, EXP + 30.0), Err(AuthError::Expired));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(v.verify(TOKEN, now.as_secs_f64()), Err(AuthError::Expired));
        // Under any other key, the signature fails.
        let other = Verifier::new(SECRET, None, 30, None, None);
        assert_eq!(other.verify(TOKEN, 1_300_819_000.0), Err(AuthError::BadSignature));
    }

    /// Tokens signed by `jose` (Node; HS256 as a Next.js route signs them, and as Better Auth's
    /// jwt() plugin signs with EdDSA, ES256, RS256, PS256) and `PyJWT`, beside the JWKS that
    /// publishes the plugin's keys; regenerate with scripts/jwt-fixtures.sh.
    #[test]
    fn accepts_tokens_from_jose_and_pyjwt() {
        let fixtures: Value = serde_json::from_str(include_str!("../tests/fixtures/jwt.json")).unwrap();
        let secret = fixtures["secret"].as_str().unwrap().as_bytes();
        let jwks = Arc::new(Jwks::fixed(fixtures["jwks"].to_string().as_bytes()).unwrap());
        let now = fixtures["generated_at"].as_f64().unwrap() + 60.0;
        let tokens = fixtures["tokens"].as_array().unwrap();
        assert!(tokens.len() >= 16);
        let user = |result: Result<UserId, AuthError>| result.map(|id| id.as_str().to_owned());
        let verifier =
            |issuer, audience| Verifier::new(secret, None, 30, issuer, audience).with_jwks(Arc::clone(&jwks));
        for fixture in tokens {
            let label = fixture["label"].as_str().unwrap();
            let token = fixture["token"].as_str().unwrap();
            let expected = Ok(fixture["user_id"].as_str().unwrap().to_owned());
            let v = verifier(None, None);
            assert_eq!(user(v.verify(token, now)), expected, "{label}");
            let issuer = fixture["issuer"].as_str().map(String::from);
            let audience = fixture["audience"].as_str().map(String::from);
            if issuer.is_some() || audience.is_some() {
                let strict = verifier(issuer, audience);
                assert_eq!(user(strict.verify(token, now)), expected, "{label}, iss/aud");
                let other = verifier(None, Some("other".into()));
                assert_eq!(other.verify(token, now), Err(AuthError::WrongAudience), "{label}");
            }
            let later = 4_102_444_831.0; // past their exp (2100-01-01, +0.5 at most) + leeway
            assert_eq!(v.verify(token, later), Err(AuthError::Expired), "{label}, expiry");
            let wrong_key = Verifier::new(OTHER_SECRET, None, 30, None, None);
            assert_eq!(wrong_key.verify(token, now), Err(AuthError::BadSignature), "{label}");
        }
    }

    #[test]
    fn reasons_are_fixed_and_distinct() {
        use AuthError::*;
        let all = [
            Missing,
            Malformed,
            TooLong,
            UnsupportedHeader,
            BadSignature,
            UnknownKey,
            Expired,
            NotYetValid,
            WrongIssuer,
            WrongAudience,
            BadClaims,
        ];
        for (i, kind) in all.iter().enumerate() {
            assert!(!kind.reason().is_empty() && kind.reason().len() < 60);
            assert_eq!(kind.to_string(), kind.reason());
            assert_eq!(kind.token_presented(), *kind != Missing);
            for other in &all[i + 1..] {
                assert_ne!(kind.reason(), other.reason());
            }
        }
    }

    /// Records every log line of this test binary.
    struct Capture(std::sync::Mutex<Vec<(log::Level, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            let line = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }

    #[test]
    fn logs_the_kind_at_debug_and_never_the_token() {
        static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));
        log::set_logger(&CAPTURE).expect("no other test installs a logger");
        log::set_max_level(log::LevelFilter::Trace);
        let v = Verifier::new(SECRET, None, 30, None, None);
        let forged = sign(HS256, &alice(""), OTHER_SECRET);
        let expired = sign(HS256, r#"{"sub":"alice","exp":1}"#, SECRET);
        for token in [&forged, &expired] {
            assert!(v.authenticate(Some(&format!("Bearer {token}")), NOW).is_err());
        }
        assert_eq!(v.authenticate(None, NOW), Err(AuthError::Missing));

        let lines = CAPTURE.0.lock().unwrap();
        for kind in ["BadSignature", "Expired", "Missing"] {
            assert!(lines.iter().any(|(_, line)| line.ends_with(kind)), "{kind} not logged");
        }
        for (level, line) in lines.iter() {
            assert_eq!(*level, log::Level::Debug, "{line}");
            for segment in forged.split('.').chain(expired.split('.')) {
                assert!(!line.contains(segment), "{line}");
            }
        }
    }

    #[test]
    fn verifier_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<UserId>();
        assert_send_sync::<AuthError>();
    }

    #[test]
    fn debug_never_shows_keys() {
        let v = Verifier::new(SECRET, Some(OLD_SECRET), 30, Some(ISSUER.into()), None);
        let shown = format!("{v:?} {v:#?}");
        assert!(shown.contains("<2 redacted>") && shown.contains(ISSUER));
        for secret in [SECRET, OLD_SECRET] {
            assert!(!shown.contains(std::str::from_utf8(secret).unwrap()));
            assert!(!shown.contains(&format!("{secret:?}")[1..20]));
        }
    }
}
