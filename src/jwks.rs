//! Better Auth's JSON Web Key Set: the public keys of its asymmetric tokens (EdDSA, ES256,
//! RS256, PS256), fetched from `JWKS_URL`, cached, refreshed, and checked with OpenSSL. This
//! file answers one question for `auth.rs`: is this the signature of this key under this
//! algorithm? What a token means is decided there.
//!
//! Invariants a reviewer can check in this file alone:
//! - keys come only from `JWKS_URL`, never from a token; a key is kept only if it has a `kid`,
//!   its `use` is absent or `sig`, its type is one verified here (OKP Ed25519, EC P-256, RSA of
//!   at least 2048 bits), and its own `alg`, when present, is one its type allows;
//! - a key verifies only the algorithms of its type, narrowed to its own `alg`: `EdDSA` for
//!   Ed25519, `ES256` for P-256, `RS256` and `PS256` for RSA; nothing here verifies HS256;
//! - an ES256 signature is raw R‖S (64 bytes, not DER); either S of a pair is accepted, as
//!   every JWS library signs with both (the other spelling of a token grants nothing it does
//!   not); the rest is OpenSSL's verification;
//! - a fetch takes at most `FETCH_TIMEOUT`, `BODY_LIMIT` bytes and `MAX_KEYS` keys; `https`
//!   verifies the certificate chain (system roots) and the host name; `http` is accepted for
//!   loopback hosts only;
//! - a failed fetch keeps the last good keys; an unknown `kid` asks for a refetch at most once
//!   per `REFETCH_EVERY`, and a verification waits for one at most `WAIT`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{self, Id, PKey};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::ssl::{SslConnector, SslMethod};
use serde::Deserialize;
use serde_json::Value;

use crate::lock;

/// How long a verification may wait for a refetch.
const WAIT: Duration = Duration::from_secs(2);
/// The least time between two fetches asked for by unknown `kid`s (or retries of a failed one).
const REFETCH_EVERY: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_LIMIT: usize = 256 * 1024;
const MAX_KEYS: usize = 64;
const MIN_RSA_BITS: i32 = 2048;

/// An algorithm verified with a published key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    EdDsa,
    Es256,
    Rs256,
    Ps256,
}

impl Alg {
    /// `alg` as RFC 7518 and RFC 8037 spell it; `None` for any other, HS256 included.
    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "EdDSA" => Some(Alg::EdDsa),
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            "PS256" => Some(Alg::Ps256),
            _ => None,
        }
    }
}

/// A published public key.
pub struct Key {
    public: Public,
    /// The key's own `alg`, when the set gives one.
    alg: Option<Alg>,
}

enum Public {
    Ed25519(PKey<pkey::Public>),
    P256(EcKey<pkey::Public>),
    Rsa(PKey<pkey::Public>),
}

impl Key {
    /// Whether this key may verify `alg`: its type's algorithms, narrowed to its own `alg`.
    pub fn allows(&self, alg: Alg) -> bool {
        let by_type = match self.public {
            Public::Ed25519(_) => alg == Alg::EdDsa,
            Public::P256(_) => alg == Alg::Es256,
            Public::Rsa(_) => matches!(alg, Alg::Rs256 | Alg::Ps256),
        };
        by_type && self.alg.is_none_or(|own| own == alg)
    }

    /// Whether `signature` is this key's `alg` signature over `input`; false for an algorithm
    /// it does not allow.
    pub fn verifies(&self, alg: Alg, input: &[u8], signature: &[u8]) -> bool {
        if !self.allows(alg) {
            return false;
        }
        let checked = match &self.public {
            Public::Ed25519(key) => {
                Verifier::new_without_digest(key).and_then(|mut v| v.verify_oneshot(signature, input))
            }
            Public::P256(key) => {
                let Some((r, s)) = (signature.len() == 64).then(|| signature.split_at(32)) else { return false };
                let (Ok(r), Ok(s)) = (BigNum::from_slice(r), BigNum::from_slice(s)) else { return false };
                EcdsaSig::from_private_components(r, s).and_then(|sig| sig.verify(&openssl::sha::sha256(input), key))
            }
            Public::Rsa(key) => Verifier::new(MessageDigest::sha256(), key).and_then(|mut v| {
                if alg == Alg::Ps256 {
                    v.set_rsa_padding(Padding::PKCS1_PSS)?;
                    v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                    v.set_rsa_mgf1_md(MessageDigest::sha256())?;
                } else {
                    v.set_rsa_padding(Padding::PKCS1)?;
                }
                v.verify_oneshot(signature, input)
            }),
        };
        checked.unwrap_or(false)
    }
}

/// The members of a JWK read here; the others are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// A JWK as a `(kid, Key)`, or why it is not used.
fn key(jwk: Jwk) -> Result<(String, Key), &'static str> {
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return Err("not a signing key");
    }
    let kid = jwk.kid.ok_or("no kid")?;
    let alg = jwk.alg.map(|alg| Alg::parse(&alg).ok_or("an alg not verified here")).transpose()?;
    let bytes =
        |member: Option<String>| member.and_then(|text| URL_SAFE_NO_PAD.decode(text).ok()).ok_or("a member missing");
    let bad = |_| "not a valid public key";
    let public = match (jwk.kty.as_deref(), jwk.crv.as_deref()) {
        (Some("OKP"), Some("Ed25519")) => {
            Public::Ed25519(PKey::public_key_from_raw_bytes(&bytes(jwk.x)?, Id::ED25519).map_err(bad)?)
        }
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (bytes(jwk.x)?, bytes(jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("not a P-256 point");
            }
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(bad)?;
            let (x, y) = (BigNum::from_slice(&x).map_err(bad)?, BigNum::from_slice(&y).map_err(bad)?);
            let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y).map_err(bad)?;
            key.check_key().map_err(bad)?; // on the curve, not the point at infinity
            Public::P256(key)
        }
        (Some("RSA"), _) => {
            let (n, e) =
                (BigNum::from_slice(&bytes(jwk.n)?).map_err(bad)?, BigNum::from_slice(&bytes(jwk.e)?).map_err(bad)?);
            if !e.is_bit_set(0) || e.num_bits() < 2 {
                return Err("an RSA exponent that is not odd and at least 3");
            }
            let rsa = Rsa::from_public_components(n, e).map_err(bad)?;
            if rsa.n().num_bits() < MIN_RSA_BITS {
                return Err("an RSA key under 2048 bits");
            }
            Public::Rsa(PKey::from_rsa(rsa).map_err(bad)?)
        }
        _ => return Err("a key type or curve not verified here"),
    };
    let key = Key { public, alg: None };
    if alg.is_some_and(|alg| !key.allows(alg)) {
        return Err("an alg its type does not allow");
    }
    Ok((kid, Key { alg, ..key }))
}

type Keys = HashMap<String, Arc<Key>>;

/// The usable keys of a set; an error when it is not a set, is too large, or has none.
fn parse_set(json: &[u8]) -> Result<Keys, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(json).map_err(|_| "not a JSON Web Key Set".to_owned())?;
    if set.keys.len() > MAX_KEYS {
        return Err(format!("{} keys, more than {MAX_KEYS}", set.keys.len()));
    }
    let mut keys = Keys::new();
    for jwk in set.keys {
        match serde_json::from_value(jwk).map_err(|_| "not a JWK").and_then(key) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert_with(|| Arc::new(key)); // the first of a repeated kid
            }
            Err(why) => log::debug!("JWKS: a key left out: {why}"),
        }
    }
    if keys.is_empty() { Err("no key usable here".to_owned()) } else { Ok(keys) }
}

/// Where the set is published: `JWKS_URL`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    tls: bool,
    /// The host as in the URL (an IPv6 address in brackets).
    host: String,
    port: u16,
    /// Path and query.
    path: String,
}

impl Endpoint {
    /// `https://host[:port]/path`, or `http://` with a loopback host.
    pub fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err("must be an https:// URL (http:// on a loopback host)"),
        };
        let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        let port_at = authority.rfind(':').filter(|at| !authority[*at..].contains(']'));
        let (host, port) = match port_at {
            Some(at) => (&authority[..at], authority[at + 1..].parse().map_err(|_| "has an invalid port")?),
            None => (authority, if tls { 443 } else { 80 }),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() || host.contains('@') || path.starts_with('#') || url.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err("is not a URL of the form https://host[:port]/path");
        }
        let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err("may use http:// only for a loopback host; use https://");
        }
        let path = match path.split('#').next().unwrap_or_default() {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        Ok(Endpoint { tls, host: host.to_owned(), port, path })
    }

    /// The set's body, or why there is none.
    fn fetch(&self) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + FETCH_TIMEOUT;
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        let addr = (bare, self.port).to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(FETCH_TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(FETCH_TIMEOUT)).map_err(|e| e.to_string())?;
        // HTTP/1.0: the body ends when the server closes, and is never chunked.
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}:{}\r\nAccept: application/json\r\nUser-Agent: todo-api\r\n\r\n",
            self.path, self.host, self.port
        );
        let response = if self.tls {
            let connector = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?.build();
            let mut tls = connector.connect(bare, stream).map_err(|e| format!("TLS: {e}"))?;
            exchange(&mut tls, request.as_bytes(), deadline)?
        } else {
            exchange(&mut &stream, request.as_bytes(), deadline)?
        };
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no response head")?;
        let status = response.split(|&b| b == b'\r').next().unwrap_or_default();
        let ok = status.starts_with(b"HTTP/1.")
            && status.get(8..12) == Some(b" 200")
            && status.get(12).is_none_or(|b| *b == b' ');
        if !ok {
            return Err(format!("answered {:?}", String::from_utf8_lossy(status)));
        }
        Ok(response[head_end + 4..].to_vec())
    }
}

/// Sends `request` and reads the whole response, by `deadline` and within `BODY_LIMIT`.
fn exchange(stream: &mut (impl Read + Write), request: &[u8], deadline: Instant) -> Result<Vec<u8>, String> {
    stream.write_all(request).map_err(|e| e.to_string())?;
    let (mut response, mut chunk) = (Vec::new(), [0u8; 8192]);
    loop {
        if Instant::now() > deadline {
            return Err(format!("no whole answer within {FETCH_TIMEOUT:?}"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(response),
            Ok(n) if response.len() + n > BODY_LIMIT + 16 * 1024 => return Err("larger than 256 KiB".to_owned()),
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The cached key set, and the thread that keeps it fresh.
pub struct Jwks {
    /// `None` for a fixed set, never fetched.
    endpoint: Option<Endpoint>,
    refresh: Duration,
    state: Mutex<State>,
    /// Signalled when a fetch is wanted, and when one has ended.
    changed: Condvar,
}

struct State {
    keys: Arc<Keys>,
    /// Whether a fetch ever succeeded.
    ready: bool,
    /// When the last fetch began, whether it is still running, and how many have ended.
    began: Option<Instant>,
    fetching: bool,
    ended: u64,
    wanted: bool,
}

impl Jwks {
    /// Starts fetching the set from `endpoint` on a thread of its own: at once, then every
    /// `refresh` (every `REFETCH_EVERY` until a fetch has succeeded), and when an unknown `kid`
    /// asks. The thread ends with the last reference to the cache.
    pub fn start(endpoint: Endpoint, refresh: Duration) -> Arc<Jwks> {
        let jwks = Arc::new(Jwks::new(Some(endpoint), refresh, Keys::new(), false));
        let weak = Arc::downgrade(&jwks);
        if let Err(e) = std::thread::Builder::new().name("jwks".to_owned()).spawn(move || keep_fresh(&weak)) {
            log::error!("JWKS: cannot start the thread that fetches the keys: {e}");
        }
        jwks
    }

    /// A fixed set, never fetched (for tests and benchmarks).
    pub fn fixed(json: &[u8]) -> Result<Jwks, String> {
        Ok(Jwks::new(None, Duration::MAX, parse_set(json)?, true))
    }

    fn new(endpoint: Option<Endpoint>, refresh: Duration, keys: Keys, ready: bool) -> Jwks {
        let state = State { keys: Arc::new(keys), ready, began: None, fetching: false, ended: 0, wanted: false };
        Jwks { endpoint, refresh, state: Mutex::new(state), changed: Condvar::new() }
    }

    /// Whether a set has been fetched (the server can verify its tokens).
    pub fn is_ready(&self) -> bool {
        lock(&self.state).ready
    }

    /// The key named `kid`. An unknown one waits, at most `WAIT`, for the fetch under way, or
    /// asks for one unless the last began less than `REFETCH_EVERY` ago.
    pub fn key(&self, kid: &str) -> Option<Arc<Key>> {
        let mut state = lock(&self.state);
        if let Some(key) = state.keys.get(kid) {
            return Some(Arc::clone(key));
        }
        let recent = state.began.is_some_and(|at| at.elapsed() < REFETCH_EVERY);
        if self.endpoint.is_none() || (recent && !state.fetching) {
            return None;
        }
        state.wanted = true;
        self.changed.notify_all();
        let (ended, until) = (state.ended, Instant::now() + WAIT);
        while state.ended == ended && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            state = self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.keys.get(kid).cloned()
    }

    /// One fetch, if one is due; waits for one to be due at most a second.
    fn fetch_when_due(&self) {
        let Some(endpoint) = &self.endpoint else { return };
        let mut state = lock(&self.state);
        let every = if state.ready { self.refresh } else { REFETCH_EVERY };
        let due = |state: &State| state.wanted || state.began.is_none_or(|at| at.elapsed() >= every);
        if !due(&state) {
            state = self.changed.wait_timeout(state, Duration::from_secs(1)).unwrap_or_else(PoisonError::into_inner).0;
            if !due(&state) {
                return;
            }
        }
        (state.began, state.fetching) = (Some(Instant::now()), true);
        drop(state);
        let fetched = endpoint.fetch().and_then(|body| parse_set(&body));
        let mut state = lock(&self.state);
        match fetched {
            Ok(keys) => {
                if !state.ready
                    || keys.len() != state.keys.len()
                    || keys.keys().any(|kid| !state.keys.contains_key(kid))
                {
                    log::info!("JWKS: {} keys from {}{}", keys.len(), endpoint.host, endpoint.path);
                }
                (state.keys, state.ready) = (Arc::new(keys), true);
            }
            Err(why) => {
                log::warn!("JWKS: fetch from {}{} failed ({why}); keeping the last keys", endpoint.host, endpoint.path)
            }
        }
        state.ended += 1;
        (state.fetching, state.wanted) = (false, false);
        self.changed.notify_all();
    }
}

/// The fetching thread: holds the cache only while it works, so that it ends with it.
fn keep_fresh(jwks: &Weak<Jwks>) {
    while let Some(jwks) = jwks.upgrade() {
        jwks.fetch_when_due();
    }
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("endpoint", &self.endpoint).field("keys", &lock(&self.state).keys.len()).finish()
    }
}

/// Keys made by OpenSSL for the tests of this module and of `auth.rs`: each with its public
/// JWK and a signer.
#[cfg(test)]
pub(crate) mod test_keys {
    use super::*;
    use openssl::bn::BigNumContext;
    use openssl::ec::EcKeyRef;
    use openssl::pkey::Private;
    use openssl::sign::Signer;
    use serde_json::json;

    pub struct TestKey {
        pub kid: String,
        key: PKey<Private>,
    }

    impl TestKey {
        pub fn ed25519(kid: &str) -> TestKey {
            TestKey { kid: kid.to_owned(), key: PKey::generate_ed25519().unwrap() }
        }

        pub fn p256(kid: &str) -> TestKey {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            TestKey { kid: kid.to_owned(), key: PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap() }
        }

        pub fn rsa(kid: &str, bits: u32) -> TestKey {
            TestKey { kid: kid.to_owned(), key: PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap() }
        }

        /// The public key as the JWKS publishes it.
        pub fn jwk(&self) -> Value {
            let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
            if let Ok(ec) = self.key.ec_key() {
                let (x, y) = coordinates(&ec);
                json!({"kty": "EC", "crv": "P-256", "x": b64(&x), "y": b64(&y), "kid": self.kid})
            } else if let Ok(rsa) = self.key.rsa() {
                json!({"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()), "kid": self.kid})
            } else {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&self.key.raw_public_key().unwrap()), "kid": self.kid})
            }
        }

        /// The public key in PEM, as an attacker would know it.
        pub fn public_pem(&self) -> Vec<u8> {
            self.key.public_key_to_pem().unwrap()
        }

        /// `alg`'s signature over `input`: raw R‖S for ES256, as JWS has it.
        pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
            if let Ok(ec) = self.key.ec_key() {
                let signature = EcdsaSig::sign(&openssl::sha::sha256(input), &ec).unwrap();
                let (r, s) = (signature.r().to_vec_padded(32).unwrap(), signature.s().to_vec_padded(32).unwrap());
                return [r, s].concat();
            }
            let mut signer = match alg {
                "EdDSA" => Signer::new_without_digest(&self.key).unwrap(),
                _ => Signer::new(MessageDigest::sha256(), &self.key).unwrap(),
            };
            if alg == "PS256" {
                signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
                signer.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
            }
            signer.sign_oneshot_to_vec(input).unwrap()
        }

        /// A token with this header and payload (JSON text), signed by this key under `alg`.
        pub fn token(&self, alg: &str, header: &str, payload: &str) -> String {
            let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(self.sign(alg, input.as_bytes())))
        }
    }

    pub fn coordinates(ec: &EcKeyRef<Private>) -> (Vec<u8>, Vec<u8>) {
        let (mut x, mut y, mut context) =
            (BigNum::new().unwrap(), BigNum::new().unwrap(), BigNumContext::new().unwrap());
        ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut context).unwrap();
        (x.to_vec_padded(32).unwrap(), y.to_vec_padded(32).unwrap())
    }

    /// A set of these keys, fixed.
    pub fn set(keys: &[Value]) -> Arc<Jwks> {
        Arc::new(Jwks::fixed(json!({ "keys": keys }).to_string().as_bytes()).unwrap())
    }
}
