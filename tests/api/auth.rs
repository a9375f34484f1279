//! Authentication through HTTP: 401 with `WWW-Authenticate`, 403 for another user's path,
//! rotation, leeway, and tokens signed by the libraries frontends really use.

use serde_json::{Value, json};

use crate::common::*;

fn with_header(app: &TestApp, value: &str) -> Reply {
    app.call("GET", "/api/tasks").header("Authorization", value).send()
}

#[test]
fn no_token_is_401_with_a_bare_challenge() {
    let app = spawn_app();
    let reply = app.call("GET", "/api/tasks").send();
    reply.error(401, "unauthorized");
    assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
}

#[test]
fn a_bad_token_is_401_with_invalid_token_and_is_never_echoed() {
    let app = spawn_app();
    let expired = sign(&json!({"sub": "u1", "exp": now() - 3600}), SECRET);
    let forged = sign(&json!({"sub": "u1", "exp": now() + 3600}), "another-secret-0123456789abcdef0123");
    let none = format!("eyJhbGciOiJub25lIn0.{}.", expired.split('.').nth(1).unwrap());
    let cases = [
        ("Bearer", "scheme only"),
        ("Basic dTpw", "another scheme"),
        ("Bearer not.a.jwt", "garbage"),
        (&format!("Bearer {expired}"), "expired"),
        (&format!("Bearer {forged}"), "wrong secret"),
        (&format!("Bearer {none}"), "alg none"),
        (&format!("Bearer {}", "a".repeat(9000)), "oversized"),
    ];
    for (header, case) in cases {
        let reply = with_header(&app, header);
        let body = reply.error(401, "unauthorized");
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer error=\"invalid_token\""), "{case}");
        let token = header.split(' ').nth(1).unwrap_or("Bearer");
        assert!(token.len() < 8 || !body.to_string().contains(token), "{case}: the token is not echoed");
    }
    let body = with_header(&app, &format!("Bearer {expired}")).json();
    assert!(body["detail"].as_str().unwrap().to_lowercase().contains("expired"), "{body}");
}

#[test]
fn the_scheme_is_case_insensitive_and_spaces_may_repeat() {
    let app = spawn_app();
    let token = token("u1");
    for header in [format!("Bearer {token}"), format!("bearer {token}"), format!("BEARER   {token}")] {
        assert_eq!(with_header(&app, &header).status, 200, "{header:.12}");
    }
}

#[test]
fn the_previous_secret_is_accepted_during_a_rotation() {
    let app = spawn_app_with(&[("BETTER_AUTH_SECRET_PREVIOUS", PREVIOUS_SECRET)], todo_api::http::dispatch);
    let old = sign(&json!({"sub": "u1", "exp": now() + 60}), PREVIOUS_SECRET);
    assert_eq!(with_header(&app, &format!("Bearer {old}")).status, 200);
    let plain = spawn_app();
    with_header(&plain, &format!("Bearer {old}")).error(401, "unauthorized");
}

#[test]
fn leeway_is_honoured_on_exp_and_nbf() {
    let app = spawn_app_with(&[("JWT_LEEWAY_SECONDS", "30")], todo_api::http::dispatch);
    let status = |claims: Value| with_header(&app, &format!("Bearer {}", sign(&claims, SECRET))).status;
    assert_eq!(status(json!({"sub": "u", "exp": now() - 10})), 200, "expired 10 s ago, within leeway");
    assert_eq!(status(json!({"sub": "u", "exp": now() - 60})), 401, "expired 60 s ago");
    assert_eq!(status(json!({"sub": "u", "exp": now() + 60, "nbf": now() + 10})), 200);
    assert_eq!(status(json!({"sub": "u", "exp": now() + 600, "nbf": now() + 120})), 401);
    assert_eq!(status(json!({"sub": "u", "exp": now() + 600, "iat": now() + 120})), 401);
    let strict = spawn_app_with(&[("JWT_LEEWAY_SECONDS", "0")], todo_api::http::dispatch);
    let token = sign(&json!({"sub": "u", "exp": now() - 10}), SECRET);
    assert_eq!(with_header(&strict, &format!("Bearer {token}")).status, 401);
}

#[test]
fn issuer_and_audience_are_checked_only_when_configured() {
    let claims = json!({"sub": "u", "exp": now() + 60, "iss": "http://localhost:3000", "aud": ["x", "api"]});
    let token = format!("Bearer {}", sign(&claims, SECRET));
    assert_eq!(with_header(&spawn_app(), &token).status, 200, "ignored when not configured");
    let strict =
        spawn_app_with(&[("JWT_ISSUER", "http://localhost:3000"), ("JWT_AUDIENCE", "api")], todo_api::http::dispatch);
    assert_eq!(with_header(&strict, &token).status, 200);
    let other = spawn_app_with(&[("JWT_AUDIENCE", "billing")], todo_api::http::dispatch);
    with_header(&other, &token).error(401, "unauthorized");
}

#[test]
fn better_auth_payloads_without_sub_use_the_user_id() {
    let app = spawn_app();
    let token = sign(&json!({"id": "ba_user", "email": "a@b.c", "exp": now() + 60}), SECRET);
    let reply = app
        .call("POST", "/api/tasks")
        .header("Authorization", &format!("Bearer {token}"))
        .json(&json!({"title": "from better auth"}))
        .send();
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["user_id"], "ba_user");
}

#[test]
fn tokens_signed_by_jose_and_pyjwt_are_accepted() {
    let fixtures: Value = serde_json::from_str(include_str!("../fixtures/jwt.json")).unwrap();
    let secret = fixtures["secret"].as_str().unwrap();
    let app = spawn_app_with(&[("BETTER_AUTH_SECRET", secret)], todo_api::http::dispatch);
    // Those signed with the secret; the asymmetric ones go through a JWKS in jwks.rs.
    let hs256 = |fixture: &&Value| {
        fixture["label"].as_str().is_some_and(|label| !label.contains("S256") && !label.contains("EdDSA"))
    };
    let tokens: Vec<&Value> = fixtures["tokens"].as_array().unwrap().iter().filter(hs256).collect();
    assert!(tokens.len() >= 8);
    for fixture in tokens {
        let (label, user) = (fixture["label"].as_str().unwrap(), fixture["user_id"].as_str().unwrap());
        let reply = app
            .call("POST", &format!("/api/{}/tasks", percent_encode(user)))
            .header("Authorization", &format!("Bearer {}", fixture["token"].as_str().unwrap()))
            .json(&json!({"title": label}))
            .send();
        assert_eq!(reply.status, 201, "{label}");
        assert_eq!(reply.json()["user_id"], user, "{label}");
    }
}

#[test]
fn checks_run_in_the_contracts_order() {
    let app = spawn_app();
    // Unknown path before the token; token before the path user; path user before the id;
    // id before the body.
    app.call("POST", "/api/nope").send().error(404, "not_found");
    app.call("POST", "/api/tasks/1").send().error(405, "method_not_allowed");
    app.call("GET", "/api/other/tasks/abc").send().error(401, "unauthorized");
    app.get("/api/other/tasks/abc", "me").error(403, "forbidden");
    app.call("PUT", "/api/me/tasks/abc").auth("me").body(&[b'x'; 70_000]).send().error(404, "not_found");
    app.call("PUT", "/api/me/tasks/1").auth("me").body(&[b'x'; 70_000]).send().error(413, "payload_too_large");
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}
