//! Faults and floods: idle and slow clients, oversized heads, pool exhaustion, graceful stop,
//! hostile input. (Outage and SIGKILL durability are in `outage.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use todo_api::http::dispatch;

use crate::common::*;

/// Reads until the server closes the connection (or `limit` passes); returns what arrived.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn two_thousand_idle_connections_do_not_delay_ordinary_requests() {
    let app = spawn_app();
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(app.addr).unwrap()).collect();
    // Half of them also start a request and stall in the middle of its head.
    for stream in idle.iter().step_by(2) {
        (&*stream).write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(app.get("/api/tasks", "u1").status, 200);
        worst = worst.max(started.elapsed());
    }
    assert!(worst < Duration::from_millis(500), "slowest ordinary request took {worst:?}");
    drop(idle);
}

#[test]
fn connections_beyond_the_limit_get_a_503_and_are_closed() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "4")], dispatch);
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(app.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let reply = app.call("GET", "/health").send();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["code"], "unavailable");
    assert_eq!(reply.header("Retry-After"), Some("1"));
    drop(held);
    let started = Instant::now();
    while app.call("GET", "/health").send().status != 200 {
        assert!(started.elapsed() < Duration::from_secs(2), "served again once connections close");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_slow_request_is_cut_off_and_an_idle_connection_closed() {
    let app = spawn_app_with(&[("REQUEST_TIMEOUT_SECONDS", "1"), ("IDLE_TIMEOUT_SECONDS", "1")], dispatch);
    let mut slow = TcpStream::connect(app.addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3));
    assert!(closed, "a head still incomplete after the request timeout is cut off");

    // Sends `first`, then `drip` every `every` ms until the connection closes (at most 4 s);
    // whether it closed, and when.
    let drip = |first: &[u8], drip: &[u8], every: u64| {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        stream.write_all(first).unwrap();
        let started = Instant::now();
        while stream.write_all(drip).is_ok() && started.elapsed() < Duration::from_secs(4) {
            std::thread::sleep(Duration::from_millis(every));
        }
        let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(1));
        (closed, started.elapsed())
    };
    // A request that keeps trickling in (a chunked body's trailer lines, a byte every 200 ms)
    // is cut off at the same deadline.
    let chunked = b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    let (closed, after) = drip(chunked, b"a", 200);
    assert!(closed && after < Duration::from_secs(3), "cut off after {after:?}");
    // Empty lines are not requests: a client sending only them is idle, and closed as such.
    let (closed, after) = drip(b"", b"\r\n", 300);
    assert!(closed && after < Duration::from_secs(3), "idle for {after:?}");

    let mut idle = TcpStream::connect(app.addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (response, closed) = read_until_closed(&mut idle, Duration::from_secs(3));
    assert!(response.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&response));
    assert!(closed, "an idle keep-alive connection is closed after the idle timeout");
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn oversized_heads_get_a_431_and_the_server_keeps_serving() {
    let app = spawn_app();
    let huge_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let many_headers = format!("GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(5_000));
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    let endless = format!("GET /health HTTP/1.1\r\nX-Big: {}", "a".repeat(100_000));
    for request in [huge_header, many_headers, long_line, endless] {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        let _ = stream.write_all(request.as_bytes());
        let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(3));
        assert!(closed, "the connection is closed");
        let reply = parse_reply(&response);
        assert_eq!(reply.status, 431);
        assert_eq!(reply.json()["code"], "headers_too_large");
    }
    // Just under the limit is still served.
    let fits = format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "a".repeat(15_000));
    assert_eq!(raw(app.addr, fits.as_bytes()).status, 200);
}

#[test]
fn ambiguous_framing_is_refused_before_it_reaches_the_server() {
    let app = spawn_app();
    let auth = format!("Authorization: Bearer {}\r\n", token("u1"));
    let post = |framing: &str, body: &str| {
        let request = format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n{framing}Connection: close\r\n\r\n{body}"
        );
        raw(app.addr, request.as_bytes())
    };
    let body = r#"{"title":"smuggled"}"#;
    let mut cases = vec![
        (format!("Content-Length: {}\r\nContent-Length: 5\r\n", body.len()), 400, "bad_request"),
        (format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len()), 400, "bad_request"),
        ("Transfer-Encoding: gzip, chunked\r\n".to_owned(), 501, "not_implemented"),
    ];
    cases.push(("Content-Length: 999999999999999\r\n".to_owned(), 413, "payload_too_large"));
    for (framing, status, code) in cases {
        let reply = post(&framing, body);
        assert_eq!((reply.status, reply.json()["code"].as_str()), (status, Some(code)), "{framing}");
    }
    assert_eq!(app.get("/api/tasks", "u1").json(), json!([]), "nothing was created");
    // A declared length of terabytes: none of it is read. A route that reads no body answers
    // as usual (the connection then closes); the contract's order puts 404, 405 and 401 first.
    let huge = "Content-Length: 999999999999999\r\n\r\n";
    let cases = [
        (format!("GET /health HTTP/1.1\r\nHost: x\r\n{huge}"), 200),
        (format!("POST /nowhere HTTP/1.1\r\nHost: x\r\n{huge}"), 404),
        (format!("POST /health HTTP/1.1\r\nHost: x\r\n{huge}"), 405),
        (format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{huge}"), 401),
        (format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n{huge}"), 413),
    ];
    for (request, status) in cases {
        let reply = raw(app.addr, request.as_bytes());
        assert_eq!((reply.status, reply.header("Connection")), (status, Some("close")), "{request}");
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn raw_non_ascii_and_absolute_targets_are_understood() {
    let app = spawn_app();
    app.create("u1", "café au lait");
    let auth = format!("Authorization: Bearer {}\r\n", token("u1"));
    let cookie =
        [b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: theme=d\xc3\xa9faut\r\nConnection: close\r\n\r\n".as_slice()]
            .concat();
    assert_eq!(raw(app.addr, &cookie).status, 200, "a UTF-8 cookie from the frontend's origin");
    let search = [
        b"GET /api/tasks?q=caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n".as_slice(),
        auth.as_bytes(),
        b"Connection: close\r\n\r\n",
    ]
    .concat();
    let reply = raw(app.addr, &search);
    assert_eq!(reply.json().as_array().map(Vec::len), Some(1), "raw UTF-8 in the query is read as UTF-8");
    let absolute = format!(
        "GET http://localhost:8000/api/tasks HTTP/1.1\r\nHost: localhost:8000\r\n{auth}Connection: close\r\n\r\n"
    );
    assert_eq!(raw(app.addr, absolute.as_bytes()).status, 200);
    let request_id =
        [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\xc3\xa9\r\nConnection: close\r\n\r\n".as_slice()]
            .concat();
    let reply = raw(app.addr, &request_id);
    assert_eq!(reply.status, 200);
    assert_ne!(reply.header("X-Request-Id"), Some("abc%C3%A9"), "not a valid id: replaced");
}

/// Locks `tasks` from outside, so that requests needing it hold their pooled connection.
fn lock_tasks(app: &TestApp) -> postgres::Client {
    let mut client = app.db.client();
    client.batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE").unwrap();
    client
}

#[test]
fn an_exhausted_pool_answers_503_after_the_timeout_then_recovers() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "1"), ("DB_POOL_TIMEOUT_MS", "300")], dispatch);
    let mut lock = lock_tasks(&app);
    std::thread::scope(|scope| {
        let blocked = scope.spawn(|| app.get("/api/tasks", "u1"));
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let reply = app.get("/api/tasks", "u2");
        let waited = started.elapsed();
        reply.error(503, "unavailable");
        assert_eq!(reply.header("Retry-After"), Some("1"));
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500), "{waited:?}");
        lock.batch_execute("COMMIT").unwrap();
        assert_eq!(blocked.join().unwrap().status, 200, "the queued request completes");
    });
    assert_eq!(app.get("/api/tasks", "u2").status, 200);
}

#[test]
fn a_write_waiting_on_a_lock_past_the_statement_timeout_is_a_503_from_the_server() {
    // Directly to PostgreSQL (a pooler may refuse the startup parameter: then only the client's
    // deadline holds, and this test is about the server's).
    let overrides = [("DATABASE_URL", "{db}"), ("DB_STATEMENT_TIMEOUT_MS", "500")];
    let app = spawn_app_with(&overrides, dispatch);
    let task = app.create("u1", "locked");
    // The pool's connections carry the setting (a pool made as the server makes its own).
    let mut vars = base_env(&app.db.url());
    vars.extend(overrides.map(|(name, value)| (name.to_owned(), value.replace("{db}", &app.db.url()))));
    let pool = todo_api::db::pool(&config(&vars)).unwrap();
    let setting = first_value(&pool.get().unwrap().simple_query("SHOW statement_timeout").unwrap());
    assert_eq!(setting, "500ms", "statement_timeout of a pooled connection");
    let mut lock = lock_tasks(&app);
    let started = Instant::now();
    let reply = app.send_json("PATCH", &format!("/api/tasks/{}", task["id"]), "u1", json!({"title": "x"}));
    let waited = started.elapsed();
    lock.batch_execute("COMMIT").unwrap();
    reply.error(503, "unavailable");
    assert_eq!(reply.header("Retry-After"), Some("1"));
    // The server's 57014 at 0.5 s, well before the client's own deadline (1.5 s).
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_millis(1300), "{waited:?}");
    assert_eq!(app.get(&format!("/api/tasks/{}", task["id"]), "u1").json()["title"], "locked");
}

#[test]
fn a_flood_of_readiness_probes_is_answered_while_the_pool_is_exhausted_with_one_check_a_second() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "1"), ("DB_POOL_TIMEOUT_MS", "300")], dispatch);
    let mut lock = lock_tasks(&app);
    let mut watcher = admin();
    let app = &app;
    std::thread::scope(|scope| {
        let blocked = scope.spawn(|| app.get("/api/tasks", "u1"));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(app.get("/api/tasks", "u2").status, 503, "the request pool is exhausted");
        let until = Instant::now() + Duration::from_secs(3);
        let probes: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(move || {
                    let mut statuses = Vec::new();
                    while Instant::now() < until {
                        let started = Instant::now();
                        statuses.push(app.call("GET", "/health/ready").send().status);
                        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
                    }
                    statuses
                })
            })
            .collect();
        // What the database sees: the readiness connections, and when each last began a statement.
        let (mut most, mut checks) = (0, std::collections::BTreeSet::new());
        while Instant::now() < until {
            let rows = watcher
                .query(
                    "SELECT query_start::text FROM pg_stat_activity \
                     WHERE datname = $1 AND application_name = 'todo-api-ready'",
                    &[&app.db.name],
                )
                .unwrap();
            most = most.max(rows.len());
            checks.extend(rows.iter().filter_map(|row| row.get::<_, Option<String>>(0)));
            std::thread::sleep(Duration::from_millis(20));
        }
        let statuses: Vec<u16> = probes.into_iter().flat_map(|probe| probe.join().unwrap()).collect();
        assert!(statuses.len() > 30, "a flood: {} probes", statuses.len());
        assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
        assert_eq!(most, 1, "one readiness connection");
        assert!((1..=4).contains(&checks.len()), "about one check a second for 3 s: {checks:?}");
        lock.batch_execute("COMMIT").unwrap();
        assert_eq!(blocked.join().unwrap().status, 200);
    });
}

#[test]
fn a_stop_finishes_requests_in_flight_and_refuses_new_ones() {
    let mut app = spawn_app();
    let task = app.create("u1", "before the stop");
    let path = format!("/api/tasks/{}", task["id"]);
    let mut lock = lock_tasks(&app);
    let running = app.take_running();
    std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| app.send_json("PATCH", &path, "u1", json!({"completed": true})));
        std::thread::sleep(Duration::from_millis(300));
        let stop = scope.spawn(|| {
            let started = Instant::now();
            running.stop();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(TcpStream::connect_timeout(&app.addr, Duration::from_secs(1)).is_err(), "stopped accepting");
        lock.batch_execute("COMMIT").unwrap();
        let reply = in_flight.join().unwrap();
        assert_eq!(reply.status, 200, "the request in flight got its whole response");
        assert_eq!(reply.json()["completed"], true);
        assert!(stop.join().unwrap() >= Duration::from_millis(250), "the stop waited for it");
    });
    let id = task["id"].as_i64().unwrap();
    let completed: bool =
        app.db.client().query_one("SELECT completed FROM tasks WHERE id = $1", &[&id]).unwrap().get(0);
    assert!(completed);
}

#[test]
fn hostile_requests_get_a_4xx_or_a_closed_connection_and_the_server_keeps_serving() {
    let app = spawn_app();
    let task = app.create("u1", "target");
    let id = task["id"].as_i64().unwrap();
    let token = token("u1");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /api/tasks/{id} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
        ),
        (
            "duplicate Content-Length",
            format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 14\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{\"title\":\"x\"}}").into_bytes(),
        ),
        ("invalid UTF-8 in the path", b"GET /api/tasks/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("invalid UTF-8 in the query", [b"GET /api/tasks?q=\xff HTTP/1.1\r\nHost: x\r\n", auth.as_bytes(), b"Connection: close\r\n\r\n"].concat()),
        ("percent-encoded invalid UTF-8 in the query", format!("GET /api/tasks?q=%ff%fe HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()),
        ("path traversal", format!("GET /api/tasks/../tasks/{id} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()),
        ("encoded traversal", format!("GET /api/tasks/%2e%2e/{id} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()),
        ("encoded slash in an id", format!("GET /api/tasks/{id}%2F HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()),
        ("NUL in the path", format!("GET /api/tasks/1\0 HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()),
        ("absolute-form target", b"GET http://evil/api/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec()),
        ("unknown method", b"BREW /api/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
    ];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("NUL escape in a title", br#"{"title":"a\u0000b"}"#.to_vec()),
        ("raw NUL in the body", b"{\"title\":\"a\0b\"}".to_vec()),
        ("number out of range", br#"{"title":"x","completed":1e999}"#.to_vec()),
        ("huge integer", format!("{{\"title\":\"x\",\"completed\":{}}}", "9".repeat(5000)).into_bytes()),
        ("deep nesting", "[".repeat(60_000).into_bytes()),
        ("deep object nesting", "{\"a\":".repeat(10_000).into_bytes()),
        ("invalid UTF-8 body", b"{\"title\":\"\xc3\x28\"}".to_vec()),
        ("title not a string", br#"{"title":{"$gt":""}}"#.to_vec()),
    ];
    let mut all = cases;
    for (name, body) in bodies {
        let mut request = format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend(body);
        all.push((name, request));
    }
    for (name, request) in all {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        let _ = stream.write_all(&request);
        let (response, _) = read_until_closed(&mut stream, Duration::from_secs(5));
        if !response.is_empty() {
            let reply = parse_reply(&response);
            assert!((400..500).contains(&reply.status), "{name}: got {}", reply.status);
        }
        assert_eq!(app.call("GET", "/health").send().status, 200, "after {name}");
    }
    let tasks = app.get("/api/tasks", "u1").json();
    assert_eq!(tasks.as_array().unwrap().len(), 1, "nothing was created: {tasks}");
}

#[test]
fn keep_alive_requests_whose_head_and_body_arrive_apart_are_all_answered() {
    let app = spawn_app();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"title":"split"}"#;
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        token("u1"),
        body.len()
    );
    for i in 0..20 {
        stream.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(if i % 2 == 0 { 50 } else { 0 }));
        stream.write_all(body.as_bytes()).unwrap();
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while !response.windows(4).any(|w| w == b"\r\n\r\n") || !response.ends_with(b"}") {
            let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("request {i}: no response: {e}"));
            assert!(n > 0, "request {i}: connection closed");
            response.extend_from_slice(&buf[..n]);
        }
        assert!(response.starts_with(b"HTTP/1.1 201"), "request {i}: {}", String::from_utf8_lossy(&response));
    }
    // Two requests in one write (pipelined) get two responses.
    stream
        .write_all(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert_eq!(app.get("/api/tasks", "u1").header("X-Total-Count"), Some("20"));
}

#[test]
fn a_chunked_request_is_decoded_and_the_connection_carries_on() {
    // The chunks are decoded before the handler runs; the request pipelined after it is
    // answered on the same connection.
    let app = spawn_app();
    let chunked = |auth: &str| {
        format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             8;ext=1\r\n{{\"title\"\r\n9\r\n:\"chunk\"}}\r\n0\r\nX-Trailer: t\r\n\r\n\
             GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    };
    for (auth, status) in [(format!("Authorization: Bearer {}\r\n", token("u1")), "201"), (String::new(), "401")] {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        stream.write_all(chunked(&auth).as_bytes()).unwrap();
        let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&response);
        assert!(closed, "closed after the second response");
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "the pipelined request: {text}");
    }
    let tasks = app.get("/api/tasks", "u1");
    assert_eq!(tasks.json()[0]["title"], "chunk");
    assert_eq!(tasks.header("X-Total-Count"), Some("1"));
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.write_all(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(closed && String::from_utf8_lossy(&response).starts_with("HTTP/1.1 400"), "a malformed chunk is refused");
}

#[test]
fn header_lines_that_could_be_read_two_ways_are_refused() {
    // A reader that trims a vertical tab off a header name (tiny_http does) would take
    // `\x0bContent-Length: 0` for a framing header and smuggle the rest in as a request.
    let app = spawn_app();
    let smuggled = b"POST /health HTTP/1.1\r\n\x0bContent-Length: 0\r\nContent-Length: 37\r\nConnection: close\r\n\r\n\
                     DELETE /api/tasks/1 HTTP/1.1\r\nX-Pad: ";
    let heads: [&[u8]; 6] = [
        smuggled,
        b"GET /health HTTP/1.1\r\n\x0bContent-Length: 10\r\n\r\n",
        b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET /health HTTP/1.1\r\nFoo Bar: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nFoo : x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
    ];
    for head in heads {
        let started = Instant::now();
        let reply = raw(app.addr, head);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", String::from_utf8_lossy(head));
        reply.error(400, "bad_request");
    }
    let started = Instant::now();
    let reply = raw(app.addr, b"GET /health HTTP/1.1\n\n");
    assert!(started.elapsed() < Duration::from_secs(5), "a bare LF is refused at once");
    reply.error(400, "bad_request");
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn clients_beyond_the_workers_wait_in_turn_or_get_a_503() {
    // WORKERS=1: one handler at a time.
    let app = spawn_app_with(&[("WORKERS", "1"), ("REQUEST_TIMEOUT_SECONDS", "1")], dispatch);
    app.create("u1", "one");
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..24)
            .map(|_| {
                scope.spawn(|| {
                    let mut stream = TcpStream::connect(app.addr).unwrap();
                    let request =
                        format!("GET /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", token("u1"));
                    for _ in 0..5 {
                        stream.write_all(request.as_bytes()).unwrap();
                    }
                    stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(20));
                    (String::from_utf8_lossy(&response).matches("HTTP/1.1 200").count(), closed)
                })
            })
            .collect();
        for client in clients {
            assert_eq!(client.join().unwrap(), (6, true), "every pipelined request answered, in turn");
        }
    });
    // Requests stuck on a locked table hold the only worker: a request begun before them (its
    // deadline comes first) waits for its turn until its timeout, then gets a 503.
    let mut lock = lock_tasks(&app);
    let mut waiting = TcpStream::connect(app.addr).unwrap();
    waiting.write_all(b"G").unwrap();
    let started = Instant::now();
    std::thread::scope(|scope| {
        std::thread::sleep(Duration::from_millis(100));
        for user in ["a", "b", "c", "d"] {
            let mut stream = TcpStream::connect(app.addr).unwrap();
            let request =
                format!("GET /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", token(user));
            stream.write_all(request.as_bytes()).unwrap();
            scope.spawn(move || read_until_closed(&mut stream, Duration::from_secs(5))); // cut off after 1 s
        }
        std::thread::sleep(Duration::from_millis(300));
        waiting.write_all(b"ET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let (response, closed) = read_until_closed(&mut waiting, Duration::from_secs(5));
        let reply = parse_reply(&response);
        assert!(closed);
        reply.error(503, "unavailable");
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        lock.batch_execute("COMMIT").unwrap();
    });
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn header_tricks_never_mix_up_responses() {
    // WORKERS=1: every request runs on the one worker in turn.
    let app = spawn_app_with(&[("WORKERS", "1")], dispatch);
    let body = r#"{"title":"mine"}"#;
    let tricks =
        ["Expect: 100-continue\r\nExpect: x\r\n", "Connection: upgrade\r\nUpgrade: websocket\r\n", "TE: chunked\r\n"];
    for trick in tricks {
        let request = format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             {trick}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token("attacker"),
            body.len()
        );
        let mut stream = TcpStream::connect(app.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let (bytes, _) = read_until_closed(&mut stream, Duration::from_secs(5));
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let reply = parse_reply(bytes.strip_prefix(&interim[..]).unwrap_or(&bytes));
        assert_eq!((reply.status, reply.json()["title"].clone()), (201, json!("mine")), "{trick}");
        for _ in 0..8 {
            let victim = app.get("/api/tasks", "victim");
            assert_eq!((victim.status, victim.json()), (200, json!([])), "after {trick}");
        }
    }
    for (request_line, status) in [(" HEAD /health HTTP/1.1", 400), ("GET /health HTTP/2.0", 505)] {
        let reply = raw(app.addr, format!("{request_line}\r\nHost: x\r\nTE: chunked\r\n\r\n").as_bytes());
        assert_eq!(reply.status, status, "{request_line}");
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
}
