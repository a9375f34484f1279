//! Rate limits, through the real server: per user, per address without a valid token, behind
//! trusted proxies, and never on the public routes.

use std::time::Duration;

use todo_api::http::dispatch;

use crate::common::*;

/// One a second, bursts of three.
const SLOW: [(&str, &str); 2] = [("RATE_LIMIT_PER_MINUTE", "60"), ("RATE_LIMIT_BURST", "3")];

fn fields(reply: &Reply) -> (Option<&str>, Option<&str>) {
    (reply.header("RateLimit"), reply.header("RateLimit-Policy"))
}

#[test]
fn a_user_over_the_limit_gets_429_with_retry_after_and_the_ratelimit_fields() {
    let app = spawn_app_with(&SLOW, dispatch);
    let policy = Some("\"default\";q=60;w=60");
    for (path, remaining) in [("/api/tasks", 2), ("/api/u1/tasks", 1), ("/api/tasks/12345", 0)] {
        let reply = app.get(path, "u1");
        assert!(matches!(reply.status, 200 | 404), "{path}: {}", reply.status);
        let t = if remaining == 0 { 1 } else { 0 };
        assert_eq!(fields(&reply), (Some(format!("\"default\";r={remaining};t={t}").as_str()), policy), "{path}");
    }
    // Both families and every status draw from the one bucket of the token's user.
    let limited = app.get("/api/u1/tasks", "u1");
    let body = limited.error(429, "rate_limited");
    assert_eq!(body["detail"], "Too many requests");
    assert_eq!(limited.header("Retry-After"), Some("1"));
    assert_eq!(fields(&limited), (Some("\"default\";r=0;t=1"), policy));
    // A write over the limit changes nothing.
    app.send_json("POST", "/api/tasks", "u1", serde_json::json!({"title": "over"})).error(429, "rate_limited");
    // Another user has a bucket of their own; the public routes and preflights are never limited.
    assert_eq!(app.get("/api/tasks", "u2").status, 200);
    for _ in 0..5 {
        for path in ["/health", "/health/ready", "/openapi.json", "/metrics"] {
            let reply = app.call("GET", path).send();
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(fields(&reply), (None, None), "{path}");
        }
        let preflight = app.call("OPTIONS", "/api/tasks").header("Origin", "https://app.example").send();
        assert_eq!(preflight.status, 204);
    }
    // Browsers may read the fields.
    let cors = app.call("GET", "/api/tasks").auth("u2").header("Origin", "https://app.example").send();
    let exposed = cors.header("Access-Control-Expose-Headers").unwrap();
    for name in ["RateLimit", "RateLimit-Policy", "Retry-After"] {
        assert!(exposed.split(", ").any(|n| n == name), "{name} in {exposed}");
    }
    // A token a second: after one second u1 may make one request.
    std::thread::sleep(Duration::from_millis(1100));
    let again = app.get("/api/tasks", "u1");
    assert_eq!(again.status, 200);
    assert_eq!(fields(&again), (Some("\"default\";r=0;t=1"), policy));
    app.get("/api/tasks", "u1").error(429, "rate_limited");
    let titles: Vec<String> =
        app.get("/api/tasks", "u2").json().as_array().unwrap().iter().map(|t| t["title"].to_string()).collect();
    assert!(titles.is_empty(), "nothing was created: {titles:?}");
    let mut db = app.db.client();
    let count: i64 = db.query_one("SELECT count(*) FROM tasks", &[]).unwrap().get(0);
    assert_eq!(count, 0, "the limited create stored nothing");
}

#[test]
fn requests_without_a_valid_token_are_limited_by_address() {
    let app = spawn_app_with(&SLOW, dispatch);
    let bad = || app.call("GET", "/api/tasks").header("Authorization", "Bearer not.a.token").send();
    for _ in 0..2 {
        bad().error(401, "unauthorized");
    }
    app.call("GET", "/api/tasks").send().error(401, "unauthorized"); // no token: the same bucket
    let limited = bad();
    limited.error(429, "rate_limited");
    assert_eq!(limited.header("RateLimit"), Some("\"default\";r=0;t=1"));
    // A valid token counts against its user, not the address.
    assert_eq!(app.get("/api/tasks", "u1").status, 200);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_limited() {
    let trusted = [SLOW[0], SLOW[1], ("TRUSTED_PROXIES", "127.0.0.1")];
    let app = spawn_app_with(&trusted, dispatch);
    let from = |forwarded: &str| {
        app.call("GET", "/api/tasks").header("Authorization", "Bearer x").header("X-Forwarded-For", forwarded).send()
    };
    for _ in 0..3 {
        from("198.51.100.1").error(401, "unauthorized");
    }
    from("198.51.100.1").error(429, "rate_limited");
    // What the client itself put to the left of the proxy's entry changes nothing.
    from("203.0.113.50, 198.51.100.1").error(429, "rate_limited");
    from("198.51.100.2").error(401, "unauthorized");

    // Without TRUSTED_PROXIES the header is the client's to forge, and ignored.
    let app = spawn_app_with(&SLOW, dispatch);
    for forwarded in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        app.call("GET", "/api/tasks").header("X-Forwarded-For", forwarded).send().error(401, "unauthorized");
    }
    let reply = app.call("GET", "/api/tasks").header("X-Forwarded-For", "198.51.100.4").send();
    reply.error(429, "rate_limited");
}

#[test]
fn zero_turns_the_limits_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", "0"), ("RATE_LIMIT_BURST", "1")], dispatch);
    for _ in 0..5 {
        let reply = app.get("/api/tasks", "u1");
        assert_eq!(reply.status, 200);
        assert_eq!(fields(&reply), (None, None));
    }
}

/// Sends `count` requests of `user`'s, one after the other on one connection; returns how many
/// were allowed (200); every other one must be a 429.
fn allowed_of(app: &TestApp, user: &str, count: usize) -> usize {
    let mut client = Client::connect(app.addr);
    let request = request("GET", "/api/tasks", &format!("Authorization: Bearer {}\r\n", token(user)), None);
    let mut ok = 0;
    for _ in 0..count {
        client.send(&request);
        match client.response(false).unwrap().status {
            200 => ok += 1,
            status => assert_eq!(status, 429),
        }
    }
    ok
}

/// The contract's defaults: 600 a minute (a token each 0.1 s), bursts of 100.
#[test]
fn the_defaults_allow_a_burst_of_100_then_ten_a_second() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", ""), ("RATE_LIMIT_BURST", "")], dispatch);
    let started = std::time::Instant::now();
    let ok = allowed_of(&app, "u1", 150);
    let refilled = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(ok >= 100 && ok <= 100 + refilled, "{ok} allowed in {:?}", started.elapsed());
    assert!(ok < 150, "some were limited");
    assert_eq!(app.get("/api/tasks", "u2").header("RateLimit-Policy"), Some("\"default\";q=600;w=60"));
}

/// Many users at once, two connections each: every user gets exactly their burst, whatever the
/// others do (buckets are per user, whichever shard and thread a request lands on).
#[test]
fn concurrent_users_each_get_exactly_their_burst() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "10")], dispatch);
    let allowed: Vec<(String, usize)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (app, user) = (&app, format!("user-{}", i / 2));
                scope.spawn(move || {
                    let ok = allowed_of(app, &user, 15);
                    (user, ok)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for user in 0..16 {
        let name = format!("user-{user}");
        let total: usize = allowed.iter().filter(|(u, _)| *u == name).map(|(_, ok)| ok).sum();
        assert_eq!(total, 10, "{name}: {allowed:?}");
    }
}
