//! The database going away and coming back, and the process being stopped or killed.

use std::time::{Duration, Instant};

use serde_json::json;
use todo_api::http::dispatch;

use crate::common::*;

#[test]
fn a_database_outage_is_503_and_the_server_recovers_without_a_restart() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let app = spawn_app_with(&[("DATABASE_URL", &url), ("DB_POOL_TIMEOUT_MS", "500")], dispatch);
    app.create("u1", "before the outage");

    cluster.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let reply = app.get("/api/tasks", "u1");
        assert!(started.elapsed() < Duration::from_secs(3), "no hang: {:?}", started.elapsed());
        reply.error(503, "unavailable");
        assert_eq!(reply.header("Retry-After"), Some("1"));
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
    assert_eq!(app.call("GET", "/health/ready").send().status, 503);

    cluster.restart();
    let back = Instant::now();
    while app.get("/api/tasks", "u1").status != 200 {
        assert!(back.elapsed() < Duration::from_secs(1), "serving again within a second");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        assert_eq!(app.get("/api/tasks", "u1").json().as_array().unwrap().len(), 1, "no broken connection handed out");
    }
    // Readiness reuses a result for a second: ready again within that, plus its check.
    let back = Instant::now();
    while app.call("GET", "/health/ready").send().status != 200 {
        assert!(back.elapsed() < Duration::from_secs(2), "ready again once its last result is a second old");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_the_process_cleanly() {
    let db = TestDb::new();
    let url = db.url();
    let mut process = Process::spawn(&[("DATABASE_URL", &url), ("BETTER_AUTH_SECRET", SECRET)]);
    assert_eq!(raw(process.addr, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status, 200);
    process.signal("TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "exits after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(process.log.lock().unwrap().contains("stopped"), "{}", process.log.lock().unwrap());
}

#[test]
fn every_acknowledged_create_survives_a_sigkill() {
    let db = TestDb::new();
    let url = db.url();
    let mut process = Process::spawn(&[("DATABASE_URL", &url), ("BETTER_AUTH_SECRET", SECRET)]);
    let addr = process.addr;
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let token = token("writer");
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (acknowledged, token) = (&acknowledged, &token);
            scope.spawn(move || {
                for i in 0.. {
                    let body = json!({"title": format!("t{t}-{i}"), "description": "x".repeat(500)}).to_string();
                    let request = format!(
                        "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { break };
                    let mut bytes = Vec::new();
                    use std::io::{Read, Write};
                    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_end(&mut bytes).is_err() {
                        break;
                    }
                    if !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                        break; // the connection died before a response
                    }
                    let reply = parse_reply(&bytes);
                    if reply.status != 201 {
                        break;
                    }
                    let task = reply.json();
                    acknowledged.lock().unwrap().push((task["id"].as_i64().unwrap(), format!("t{t}-{i}")));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        process.child.kill().unwrap(); // SIGKILL
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 50, "the load ran: {}", acknowledged.len());
    let mut client = db.client();
    for (id, title) in &acknowledged {
        let row = client.query_opt("SELECT title FROM tasks WHERE id = $1", &[id]).unwrap();
        assert_eq!(
            row.map(|r| r.get::<_, String>(0)).as_deref(),
            Some(title.as_str()),
            "acknowledged task {id} is stored"
        );
    }
    let whole: i64 = client
        .query_one("SELECT count(*) FROM tasks WHERE user_id = 'writer' AND description = repeat('x', 500) AND title ~ '^t[0-9]-[0-9]+$'", &[])
        .unwrap()
        .get(0);
    let all: i64 = client.query_one("SELECT count(*) FROM tasks", &[]).unwrap().get(0);
    assert_eq!(whole, all, "every stored row is whole");
    assert!(all as usize >= acknowledged.len());
}

/// A TCP proxy to the test PostgreSQL that can be frozen: connections stay open, nothing moves.
struct FreezableProxy {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezableProxy {
    fn start(upstream: std::net::SocketAddr) -> FreezableProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&frozen);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    let flag = std::sync::Arc::clone(&flag);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        while let Ok(n) = from.read(&mut buf) {
                            while flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        FreezableProxy { addr, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.freeze(false); // a failed test must not leave requests hanging
    }
}

#[test]
fn a_database_that_stops_answering_gives_503_not_a_hang() {
    let db = TestDb::new();
    let upstream = std::net::TcpStream::connect((
        "127.0.0.1",
        admin().query_one("SELECT inet_server_port()", &[]).unwrap().get::<_, i32>(0) as u16,
    ))
    .unwrap()
    .peer_addr()
    .unwrap();
    let proxy = FreezableProxy::start(upstream);
    let through = format!("postgres://postgres@{}/{}", proxy.addr, db.name);
    // WORKERS=2: two requests stuck on the database would leave none for anything else.
    let app = spawn_app_with(
        &[
            ("DATABASE_URL", &through),
            ("DATABASE_MIGRATION_URL", &db.url()),
            ("DB_POOL_TIMEOUT_MS", "500"),
            ("DB_STATEMENT_TIMEOUT_MS", "1000"),
            ("WORKERS", "2"),
        ],
        dispatch,
    );
    app.create("u1", "before the freeze");
    proxy.freeze(true);
    // The connection the create just used passed its check less than 250 ms ago: it is handed
    // out unchecked, and the request on it waits on the frozen database. The other request gets
    // a connection that fails its check. Both workers are taken; both are freed by 1 s + 1 s.
    let started = Instant::now();
    let waited: Vec<Duration> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    app.get("/api/tasks", "u1").error(503, "unavailable");
                    started.elapsed()
                })
            })
            .collect();
        requests.into_iter().map(|request| request.join().unwrap()).collect()
    });
    let slowest = waited.iter().max().copied().unwrap_or_default();
    assert!(slowest >= Duration::from_millis(1500), "one request waited on the database: {waited:?}");
    assert!(slowest < Duration::from_millis(2600), "cut off by DB_STATEMENT_TIMEOUT_MS + 1 s: {waited:?}");
    let health = Instant::now();
    assert_eq!(app.call("GET", "/health").send().status, 200);
    assert!(health.elapsed() < Duration::from_millis(500), "a worker is free: {:?}", health.elapsed());
    let started = Instant::now();
    assert_eq!(app.call("GET", "/health/ready").send().status, 503);
    assert!(started.elapsed() < Duration::from_millis(2500), "ready answers within its 2 s: {:?}", started.elapsed());
    for _ in 0..2 {
        let started = Instant::now();
        app.get("/api/tasks", "u1").error(503, "unavailable");
        assert!(started.elapsed() < Duration::from_secs(3), "no hang: {:?}", started.elapsed());
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
    proxy.freeze(false);
    let thawed = Instant::now();
    while app.get("/api/tasks", "u1").status != 200 {
        assert!(thawed.elapsed() < Duration::from_secs(10), "serving again after the thaw");
        std::thread::sleep(Duration::from_millis(50));
    }
}
