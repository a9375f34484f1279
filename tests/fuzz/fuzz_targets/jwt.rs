//! Fuzzes bearer-token verification (`todo_api::auth`).
//!
//! Every input is used twice:
//!
//! 1. **Raw**: the bytes (lossily, when not UTF-8) are a token for `Verifier::verify`, and an
//!    `Authorization` header value for `Verifier::authenticate`.
//! 2. **Structured**: the bytes describe a token that this target builds, so that inputs get
//!    past the MAC and reach the header and claim checks. Layout:
//!
//!    ```text
//!    FLAGS [HEADER NUL] PAYLOAD [NUL SIGNATURE]
//!    ```
//!
//!    HEADER and PAYLOAD are base64url-encoded as they are; without a NUL, the header is
//!    `{"alg":"HS256","typ":"JWT"}`. FLAGS bit 0 clear: signed with a key of the verifier
//!    (bit 1 picks the previous key over the current one). Bit 0 set: not signed with a key
//!    of the verifier: SIGNATURE is the signature's bytes, or, when absent, a MAC under an
//!    unrelated key.
//!
//! Properties checked, besides "never panics":
//! - a token that is accepted is at most `MAX_TOKEN_LEN` bytes, its signature is the
//!   HMAC-SHA256 of its `header.payload` text under one of the verifier's keys, its header
//!   says `alg: HS256` without `crit`, it has not expired, its issuer and audience are the
//!   configured ones, and the user id returned is its first `sub` / `user_id` / `id` /
//!   `user.id` / `session.userId` claim;
//! - a token that is not signed with a key of the verifier is never accepted, and is
//!   rejected for its length, its encoding or its signature only (without a JWKS, nothing
//!   is parsed before the MAC);
//! - `authenticate(Some("Bearer <t>"))` answers exactly as `verify(t)`;
//! - with a JWKS beside the secret (Better Auth's public keys, whose private halves this
//!   target does not have), the same holds: nothing but an HMAC under the secret is accepted,
//!   whatever `alg`, `kid`, `jwk` or `jku` the header names.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use todo_api::auth::{AuthError, MAX_TOKEN_LEN, MAX_USER_ID_LEN, UserId, Verifier};
use todo_api::jwks::Jwks;

const SECRET: &[u8] = b"fuzz-current-secret-0123456789abcdef0123";
const PREVIOUS: &[u8] = b"fuzz-previous-secret-0123456789abcdef012";
const UNRELATED: &[u8] = b"fuzz-unrelated-secret-0123456789abcdef01";
/// The pinned clock: 2023-11-14T22:13:20Z.
const NOW: f64 = 1_700_000_000.0;
const LEEWAY: u64 = 30;
const ISSUER: &str = "https://app.example.com";
const AUDIENCE: &str = "todo-api";
const DEFAULT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;
/// The token fixtures; their `jwks` member is Better Auth's public keys (Ed25519, P-256, RSA).
const FIXTURES: &str = include_str!("../../fixtures/jwt.json");

/// A verifier and what it was configured with, for the oracle.
struct Case {
    verifier: Verifier,
    keys: &'static [&'static [u8]],
    issuer: Option<&'static str>,
    audience: Option<&'static str>,
}

impl Case {
    fn with_jwks(mut self) -> Case {
        let fixtures: Value = serde_json::from_str(FIXTURES).expect("the fixtures are JSON");
        let jwks = Jwks::fixed(fixtures["jwks"].to_string().as_bytes()).expect("the JWKS parses");
        self.verifier = self.verifier.with_jwks(Arc::new(jwks));
        self
    }

    fn new(
        keys: &'static [&'static [u8]],
        issuer: Option<&'static str>,
        audience: Option<&'static str>,
    ) -> Case {
        let verifier = Verifier::new(
            keys[0],
            keys.get(1).copied(),
            LEEWAY,
            issuer.map(str::to_owned),
            audience.map(str::to_owned),
        );
        Case {
            verifier,
            keys,
            issuer,
            audience,
        }
    }
}

/// Current secret only, no issuer or audience.
static PLAIN: LazyLock<Case> = LazyLock::new(|| Case::new(&[SECRET], None, None));
/// During a rotation, with an issuer and an audience configured.
static STRICT: LazyLock<Case> =
    LazyLock::new(|| Case::new(&[SECRET, PREVIOUS], Some(ISSUER), Some(AUDIENCE)));
/// Current secret and Better Auth's public keys.
static KEYED: LazyLock<Case> = LazyLock::new(|| Case::new(&[SECRET], None, None).with_jwks());

fn mac(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.chain_update(input).finalize().into_bytes().to_vec()
}

/// The members of an accepted segment. Each is kept raw first: the verifier skips a member it
/// does not read without building it, and a `Value` cannot hold every JSON number (`1e999`), so
/// such a member is left out here too.
fn object(json: &[u8]) -> Map<String, Value> {
    let members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(json).expect("an accepted token's segment is a JSON object");
    members
        .into_iter()
        .filter_map(|(name, raw)| Some((name, serde_json::from_str(raw.get()).ok()?)))
        .collect()
}

/// What must hold of a token that `case` accepted as `user`.
fn assert_sound(case: &Case, token: &str, user: &UserId) {
    assert!(token.len() <= MAX_TOKEN_LEN, "accepted an over-long token");
    let (input, signature) = token
        .rsplit_once('.')
        .expect("accepted token has 3 segments");
    let (header, payload) = input
        .split_once('.')
        .expect("accepted token has 3 segments");
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .expect("accepted segment is base64url")
    };
    let signature = decode(signature);
    assert!(
        case.keys
            .iter()
            .any(|key| mac(key, input.as_bytes()) == signature),
        "accepted a token that is not signed with a key of the verifier"
    );

    let header = object(&decode(header));
    assert_eq!(header.get("alg").and_then(Value::as_str), Some("HS256"));
    assert!(!header.contains_key("crit"), "accepted a header with crit");

    let claims = object(&decode(payload));
    let exp = claims.get("exp").and_then(Value::as_f64);
    let exp = exp.expect("accepted a token without a numeric exp");
    assert!(NOW < exp + LEEWAY as f64, "accepted an expired token");
    if let Some(issuer) = case.issuer {
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(issuer));
    }
    if let Some(audience) = case.audience {
        let listed = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        assert!(listed, "accepted a token for another audience");
    }
    let member = |object: Option<&Value>, name: &str| object?.as_object()?.get(name).cloned();
    let id = ["sub", "user_id", "id"]
        .iter()
        .find_map(|name| claims.get(*name).cloned())
        .or_else(|| member(claims.get("user"), "id"))
        .or_else(|| member(claims.get("session"), "userId"));
    let id = id.as_ref().and_then(Value::as_str);
    assert_eq!(id, Some(user.as_str()), "user id is not the token's claim");
    assert!(!user.as_str().is_empty() && user.as_str().len() <= MAX_USER_ID_LEN);
}

/// Verifies `token` with `case`, both bare and in a header, and checks what it accepts.
fn verify(case: &Case, token: &str) -> Result<UserId, AuthError> {
    let bare = case.verifier.verify(token, NOW);
    let header = case
        .verifier
        .authenticate(Some(&format!("Bearer {token}")), NOW);
    // In a header, the spaces after `Bearer` (one or more) take a token's leading spaces.
    if !token.starts_with(' ') {
        assert_eq!(bare, header, "authenticate and verify disagree");
    }
    if let Ok(user) = &bare {
        assert_sound(case, token, user);
    }
    bare
}

/// An arbitrary `Authorization` header value.
fn authenticate(case: &Case, header: &str) {
    if let Ok(user) = case.verifier.authenticate(Some(header), NOW) {
        let (_, token) = header
            .split_once(' ')
            .expect("accepted header has a scheme");
        assert_sound(case, token.trim_start_matches(' '), &user);
    }
}

fn raw(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for case in [&*PLAIN, &*STRICT, &*KEYED] {
        let _ = verify(case, &text);
        authenticate(case, &text);
    }
}

fn structured(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let first = parts.next().unwrap_or_default();
    let (header, payload) = match parts.next() {
        Some(payload) => (first, payload),
        None => (DEFAULT_HEADER, first),
    };
    let given_signature = parts.next();

    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let unsigned = flags & 1 == 1;
    let key = match (unsigned, flags & 2 == 2) {
        (true, _) => UNRELATED,
        (false, false) => SECRET,
        (false, true) => PREVIOUS,
    };
    let signature = match given_signature {
        Some(bytes) if unsigned => bytes.to_vec(),
        _ => mac(key, input.as_bytes()),
    };
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));

    for case in [&*PLAIN, &*STRICT, &*KEYED] {
        let result = verify(case, &token);
        // Signed with one of the verifier's keys, by chance or on purpose?
        let signed = case
            .keys
            .iter()
            .any(|k| mac(k, input.as_bytes()) == signature);
        if token.len() > MAX_TOKEN_LEN {
            assert_eq!(result, Err(AuthError::TooLong));
        } else if header.is_empty() || payload.is_empty() || signature.is_empty() {
            assert_eq!(result, Err(AuthError::Malformed));
        } else if !signed && case.verifier.jwks().is_some() {
            // The header is read first to find the key: any refusal will do.
            assert!(result.is_err(), "accepted a token not signed with the secret");
        } else if !signed {
            assert_eq!(result, Err(AuthError::BadSignature));
        } else {
            assert_ne!(result, Err(AuthError::BadSignature));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    structured(data);
});
