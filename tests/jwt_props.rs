//! Property tests for `todo_api::auth`: whatever the input, `verify` and
//! `authenticate` return (never panic), and nothing is accepted unless it is
//! byte for byte a token signed with the verifier's key.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use todo_api::auth::{AuthError, Verifier};

const KEY: &[u8] = b"property-test-key-property-test-key-0123";
const OTHER_KEY: &[u8] = b"another-key-another-key-another-key-0123";
const NOW: f64 = 1_700_000_000.0;
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn verifier() -> Verifier {
    Verifier::new(KEY, None, 30, None, None)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(header_json: &str, payload_json: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header_json), b64(payload_json));
    let mac = Hmac::<Sha256>::new_from_slice(key).unwrap().chain_update(&input);
    format!("{input}.{}", b64(mac.finalize().into_bytes()))
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
        (0.0..4e9f64).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON object whose keys are often the ones the verifier reads.
fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        prop::sample::select(vec!["alg", "crit", "typ", "sub", "user_id", "id", "exp", "nbf", "iat", "iss", "aud",])
            .prop_map(String::from),
        ".{0,8}",
    ];
    prop::collection::btree_map(key, json_value(), 0..8).prop_map(|map| map.into_iter().collect())
}

/// Claims that the verifier accepts: a user id, a valid exp, and noise.
fn valid_claims() -> impl Strategy<Value = (String, String)> {
    ("[a-zA-Z0-9_é東-]{1,40}", 1u64..1_000_000, json_object()).prop_map(|(sub, ttl, noise)| {
        let mut claims = Map::new();
        for (key, value) in noise {
            if !["sub", "user_id", "id", "exp", "nbf", "iat", "iss", "aud"].contains(&key.as_str()) {
                claims.insert(key, value);
            }
        }
        claims.insert("sub".into(), json!(sub));
        claims.insert("exp".into(), json!(1_700_000_000 + ttl));
        (sub, Value::Object(claims).to_string())
    })
}

/// The user id the verifier should take from `claims`, if it accepts them.
fn expected_user(claims: &Map<String, Value>) -> Option<&str> {
    ["sub", "user_id", "id"].iter().find_map(|name| claims.get(*name))?.as_str()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let v = verifier();
        prop_assert!(v.verify(&text, NOW).is_err());
        prop_assert!(v.authenticate(Some(&text), NOW).is_err());
        let header = format!("Bearer {text}");
        prop_assert!(v.authenticate(Some(&header), NOW).is_err());
    }

    #[test]
    fn arbitrary_strings_are_rejected(text in "\\PC{0,300}") {
        let v = verifier();
        prop_assert!(v.verify(&text, NOW).is_err());
        let header = format!("bearer {text}");
        prop_assert!(v.authenticate(Some(&header), NOW).is_err());
    }

    #[test]
    fn token_shaped_strings_are_rejected(
        header in "[A-Za-z0-9_-]{0,60}",
        payload in "[A-Za-z0-9_-]{0,200}",
        signature in "[A-Za-z0-9_-]{0,90}",
        separator in prop::sample::select(vec![".", ".."]),
        end in prop::sample::select(vec!["", "."]),
    ) {
        let token = [header, payload, signature].join(separator) + end;
        prop_assert!(verifier().verify(&token, NOW).is_err());
    }

    /// Signed with another key, any header and payload fail on the MAC, which
    /// is checked before a single claim is read.
    #[test]
    fn foreign_key_fails_on_the_signature(header in json_object(), payload in json_object()) {
        let (header, payload) = (Value::Object(header), Value::Object(payload));
        let token = sign(&header.to_string(), &payload.to_string(), OTHER_KEY);
        prop_assert_eq!(verifier().verify(&token, NOW), Err(AuthError::BadSignature));
    }

    /// ... and so do acceptable claims: only the key differs.
    #[test]
    fn foreign_key_fails_on_valid_claims((sub, claims) in valid_claims()) {
        let v = verifier();
        let accepted = v.verify(&sign(HS256, &claims, KEY), NOW);
        prop_assert_eq!(accepted.map(|id| id.as_str().to_owned()), Ok(sub));
        let forged = sign(HS256, &claims, OTHER_KEY);
        prop_assert_eq!(v.verify(&forged, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn random_signatures_are_rejected(
        (_, claims) in valid_claims(),
        signature in prop::collection::vec(any::<u8>(), 1..80),
    ) {
        let token = sign(HS256, &claims, KEY);
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", b64(&signature));
        prop_assert_eq!(verifier().verify(&forged, NOW), Err(AuthError::BadSignature));
    }

    /// Signed with the right key, any header and claims are handled without
    /// panicking, and an accepted token yields the id its claims name.
    #[test]
    fn right_key_arbitrary_claims(
        mut header in json_object(),
        mut claims in json_object(),
        usable in any::<bool>(),
    ) {
        if usable {
            header.insert("alg".into(), json!("HS256"));
            header.remove("crit");
            claims.insert("exp".into(), json!(1_700_003_600));
        }
        let header_json = Value::Object(header.clone()).to_string();
        let token = sign(&header_json, &Value::Object(claims.clone()).to_string(), KEY);
        if let Ok(id) = verifier().verify(&token, NOW) {
            prop_assert_eq!(header.get("alg"), Some(&json!("HS256")));
            prop_assert!(!header.contains_key("crit"));
            prop_assert_eq!(Some(id.as_str()), expected_user(&claims));
        }
    }

    /// Flipping any bits of any one byte of a valid token makes it invalid.
    #[test]
    fn every_single_byte_mutation_is_rejected((_, claims) in valid_claims(), mask in 1u8..=255) {
        let v = verifier();
        let token = sign(HS256, &claims, KEY);
        prop_assert!(v.verify(&token, NOW).is_ok());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] ^= mask;
            if let Ok(mutated) = String::from_utf8(bytes) {
                let result = v.verify(&mutated, NOW);
                prop_assert!(result.is_err(), "byte {} ^ {:#04x} accepted", i, mask);
            }
        }
    }

    /// Truncating a valid token, or appending to it, makes it invalid.
    #[test]
    fn truncated_or_extended_tokens_are_rejected(
        (_, claims) in valid_claims(),
        suffix in "\\PC{1,4}",
    ) {
        let v = verifier();
        let token = sign(HS256, &claims, KEY);
        for end in 0..token.len() {
            let result = v.verify(&token[..end], NOW);
            prop_assert!(result.is_err(), "prefix of {} bytes accepted", end);
        }
        let extended = format!("{token}{suffix}");
        prop_assert!(v.verify(&extended, NOW).is_err());
    }
}

/// Every substitution of one character by another base64url character or a
/// dot is rejected. With strict decoding this covers the characters that
/// only differ in unused trailing bits and would decode to the same bytes.
#[test]
fn every_single_character_substitution_is_rejected() {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let v = verifier();
    let token = sign(HS256, r#"{"sub":"alice","exp":1700003600,"n":"x"}"#, KEY);
    assert!(v.verify(&token, NOW).is_ok());
    for i in 0..token.len() {
        for &c in CHARS.iter().filter(|&&c| c != token.as_bytes()[i]) {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = c;
            let mutated = String::from_utf8(bytes).unwrap();
            assert!(v.verify(&mutated, NOW).is_err(), "{:?} at {i} accepted", char::from(c));
        }
    }
}
