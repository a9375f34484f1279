//! Micro-benchmark: a full `Verifier::verify` of a typical token against the
//! raw HMAC-SHA256 it is built on, and of the same claims signed with EdDSA,
//! ES256 and RS256 as Better Auth's jwt() plugin signs them (a key from a JWKS,
//! by kid). Run with `cargo bench --bench jwt`.
//!
//! Each figure is the fastest of several rounds, which filters out noise from
//! other processes. The last two lines put the rest in scale.

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Map, Value};
use sha2::Sha256;
use todo_api::auth::Verifier;
use todo_api::jwks::Jwks;

const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret!!";
const NOW: f64 = 1_760_000_000.0;
const ITERATIONS: u32 = 20_000;
const ROUNDS: u32 = 7;

/// Nanoseconds per call of `f`: the fastest of ROUNDS rounds of ITERATIONS calls.
fn ns_per_op(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .fold(f64::INFINITY, f64::min)
}

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A typical session token, as a Next.js route signs it with `jose`.
    let header_json = r#"{"alg":"HS256","typ":"JWT"}"#;
    let payload_json = concat!(
        r#"{"name":"Ada Lovelace","email":"ada@example.com","#,
        r#""sub":"usr_01JZ8Q4T6M3V9XKQ2B7N5C1D0E","iat":1759996400,"exp":1760003600}"#,
    );
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(payload_json));
    let key = Hmac::<Sha256>::new_from_slice(SECRET)?;
    let tag = key.clone().chain_update(signing_input.as_bytes()).finalize();
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.into_bytes()));

    let verifier = Verifier::new(SECRET, None, 30, None, None);
    if verifier.verify(&token, NOW).is_err() {
        return Err("the benchmark token must verify".into());
    }

    let verify = ns_per_op(|| {
        let _ = black_box(verifier.verify(black_box(&token), black_box(NOW)));
    });
    let hmac = ns_per_op(|| {
        let mac = black_box(&key).clone().chain_update(black_box(signing_input.as_bytes()));
        black_box(mac.finalize());
    });
    let decode = ns_per_op(|| {
        for segment in black_box(&token).split('.').skip(1) {
            let _ = black_box(URL_SAFE_NO_PAD.decode(segment));
        }
    });
    let parse = ns_per_op(|| {
        let _ = black_box(serde_json::from_slice::<Map<String, Value>>(black_box(payload_json.as_bytes())));
    });

    // The same claims under each asymmetric algorithm, verified through a JWKS by kid.
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    let (ed, ec) = (PKey::generate_ed25519()?, PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?);
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (mut x, mut y, mut context) =
        (openssl::bn::BigNum::new()?, openssl::bn::BigNum::new()?, openssl::bn::BigNumContext::new()?);
    let ec_key = ec.ec_key()?;
    ec_key.public_key().affine_coordinates(&group, &mut x, &mut y, &mut context)?;
    let rsa_key = rsa.rsa()?;
    let keys = serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&ed.raw_public_key()?), "kid": "ed"},
        {"kty": "EC", "crv": "P-256", "x": b64(&x.to_vec_padded(32)?), "y": b64(&y.to_vec_padded(32)?), "kid": "ec"},
        {"kty": "RSA", "n": b64(&rsa_key.n().to_vec()), "e": b64(&rsa_key.e().to_vec()), "kid": "rsa"},
    ]});
    let jwks = std::sync::Arc::new(Jwks::fixed(keys.to_string().as_bytes())?);
    let asymmetric = Verifier::new(SECRET, None, 30, None, None).with_jwks(jwks);
    let sign = |alg: &str, kid: &str, key: &PKey<Private>| -> Result<String, Box<dyn std::error::Error>> {
        let header = format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#);
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload_json.as_bytes()));
        let signature = match alg {
            "EdDSA" => Signer::new_without_digest(key)?.sign_oneshot_to_vec(input.as_bytes())?,
            "ES256" => {
                let ec_key = key.ec_key()?;
                let sig = openssl::ecdsa::EcdsaSig::sign(&openssl::sha::sha256(input.as_bytes()), &ec_key)?;
                [sig.r().to_vec_padded(32)?, sig.s().to_vec_padded(32)?].concat()
            }
            _ => Signer::new(openssl::hash::MessageDigest::sha256(), key)?.sign_oneshot_to_vec(input.as_bytes())?,
        };
        Ok(format!("{input}.{}", b64(&signature)))
    };
    let mut timed = Vec::new();
    for (alg, kid, key) in [("EdDSA", "ed", &ed), ("ES256", "ec", &ec), ("RS256", "rsa", &rsa)] {
        let token = sign(alg, kid, key)?;
        if asymmetric.verify(&token, NOW).is_err() {
            return Err(format!("the {alg} benchmark token must verify").into());
        }
        timed.push((
            alg,
            ns_per_op(|| {
                let _ = black_box(asymmetric.verify(black_box(&token), black_box(NOW)));
            }),
        ));
    }

    println!("token: {} bytes; signing input: {} bytes", token.len(), signing_input.len());
    println!("(a) verify                {verify:8.1} ns/op");
    println!("(b) raw HMAC-SHA256       {hmac:8.1} ns/op");
    println!("(c) ratio (a) / (b)       {:8.2}", verify / hmac);
    println!("    base64 decode         {decode:8.1} ns/op (payload and signature, as (a) does)");
    println!("    JSON parse to a map   {parse:8.1} ns/op (payload; (a) keeps only the claims it reads)");
    for (alg, ns) in timed {
        println!("    verify {alg:<6}          {ns:8.1} ns/op (the same claims, the key from a JWKS by kid)");
    }
    Ok(())
}
