//! The connection layer: isolation under concurrent and hostile traffic, slow readers, and the
//! framing rules of src/head.rs and src/server.rs, each through a real socket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rouille::{Request, Response};
use serde_json::json;
use todo_api::App;
use todo_api::error::ApiError;
use todo_api::http::{self, Action, Route, Token};

use crate::common::*;

/// Gives `user` `count` tasks with 1000-character descriptions (a page of them is large).
fn seed_big_user(app: &TestApp, user: &str, count: i32) {
    let mut client = app.db.client();
    client.execute("INSERT INTO users (id) VALUES ($1)", &[&user]).unwrap();
    client
        .execute(
            "INSERT INTO tasks (user_id, title, description)
             SELECT $1, 'big ' || g, repeat('d', 1000) FROM generate_series(1, $2) g",
            &[&user, &count],
        )
        .unwrap();
}

fn bearer(user: &str) -> String {
    format!("Authorization: Bearer {}\r\n", token(user))
}

/// The tasks in a list response; each must be `user`'s.
fn assert_own_tasks(reply: &Reply, user: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {}", String::from_utf8_lossy(&reply.body));
    for task in reply.json().as_array().unwrap() {
        assert_eq!(task["user_id"], user, "{what}: another user's task {task}");
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Create,
    List,
    NoToken,
}

/// A well-behaved client on one keep-alive connection: creates and lists its own tasks, some
/// requests pipelined, every one with its own request id. Returns how many tasks it created.
fn good_client(i: usize, app: &TestApp) -> usize {
    let user = format!("iso-{i}");
    let auth = bearer(&user);
    let mut client = Client::connect(app.addr);
    let mut created = 0;
    for round in 0..12 {
        let kinds: &[Kind] = match (i % 3, round % 4) {
            (0, _) | (_, 0) => &[Kind::Create, Kind::List, Kind::Create],
            (_, 3) => &[Kind::NoToken],
            _ => &[Kind::List],
        };
        let requests: Vec<(String, Kind, Vec<u8>)> = kinds
            .iter()
            .enumerate()
            .map(|(n, kind)| {
                let id = format!("c{i}-r{round}-{n}");
                let rid = format!("X-Request-Id: {id}\r\n");
                let bytes = match kind {
                    Kind::Create => {
                        let title = json!({"title": format!("iso-{i} #{round}-{n}")});
                        request("POST", "/api/tasks", &format!("{auth}{rid}"), Some(&title))
                    }
                    Kind::List if n % 2 == 0 => request("GET", "/api/tasks?limit=1000", &format!("{auth}{rid}"), None),
                    Kind::List => {
                        request("GET", &format!("/api/{user}/tasks?limit=1000"), &format!("{auth}{rid}"), None)
                    }
                    Kind::NoToken => request("GET", "/api/tasks", &rid, None),
                };
                (id, *kind, bytes)
            })
            .collect();
        let pipelined = requests.len() > 1 && i.is_multiple_of(2);
        if pipelined {
            client.send(&requests.iter().flat_map(|(_, _, bytes)| bytes.clone()).collect::<Vec<u8>>());
        }
        for (id, kind, bytes) in &requests {
            if !pipelined {
                client.send(bytes);
            }
            let reply = client.response(false).unwrap_or_else(|| panic!("{id}: connection closed"));
            assert_eq!(reply.header("X-Request-Id"), Some(id.as_str()), "{id}: someone else's response");
            match kind {
                Kind::Create => {
                    assert_eq!(reply.status, 201, "{id}: {}", String::from_utf8_lossy(&reply.body));
                    assert_eq!(reply.json()["user_id"], user.as_str(), "{id}");
                    created += 1;
                }
                Kind::List => assert_own_tasks(&reply, &user, id),
                Kind::NoToken => assert_eq!(reply.status, 401, "{id}: a token carried over from another request"),
            }
        }
    }
    created
}

/// A connection that misbehaves in one of ten ways, under its own user `mal-{j}`.
fn hostile_once(j: usize, case: usize, app: &TestApp) {
    let user = format!("mal-{j}");
    let auth = bearer(&user);
    let mut client = Client::connect(app.addr);
    let expect = |client: &mut Client, status: u16, case: usize| {
        if let Some(reply) = client.response(false) {
            assert_eq!(reply.status, status, "hostile case {case}: {}", String::from_utf8_lossy(&reply.body));
            if reply.status == 200 {
                assert_own_tasks(&reply, &user, "hostile");
            }
        }
    };
    match case % 10 {
        0 => {
            client.send(b"GET /api/tasks HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
            expect(&mut client, 400, case);
        }
        1 => {
            // A smuggling attempt: if the inner request ever ran, a task titled "smuggled" would exist.
            let inner = String::from_utf8(request("POST", "/api/tasks", &auth, Some(&json!({"title": "smuggled"}))));
            let outer = format!(
                "POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                inner.unwrap()
            );
            client.send(outer.as_bytes());
            expect(&mut client, 400, case);
        }
        2 => client.send(b"GET /api/tasks HTTP/1.1\r\nHost: x\r\nAuthoriz"), // truncated head, abandoned
        3 => {
            let head = format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n");
            client.send(format!("{head}Content-Length: 100\r\n\r\n{{\"title\":").as_bytes()); // truncated body
        }
        4 => {
            client.send(
                format!("GET /api/tasks HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).as_bytes(),
            );
            expect(&mut client, 431, case);
        }
        5 => {
            let head = format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n");
            let mut bytes = format!("{head}Content-Length: 200000\r\n\r\n").into_bytes();
            bytes.resize(bytes.len() + 200_000, b' ');
            let _ = client.stream.write_all(&bytes);
            expect(&mut client, 413, case);
        }
        6 => client.send(&request("GET", "/api/tasks", &auth, None)), // abandoned before its response
        7 => {}                                                       // connects and goes
        8 => {
            client.send(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
            expect(&mut client, 400, case);
        }
        _ => {
            // A valid request, then garbage pipelined behind it.
            let mut bytes = request("GET", "/api/tasks", &auth, None);
            bytes.extend_from_slice(b"\x16\x03\x01 garbage\r\n\r\n");
            client.send(&bytes);
            expect(&mut client, 200, case);
            expect(&mut client, 400, case);
        }
    }
}

/// Asks for a large page three times pipelined, then reads slowly (or not at all) until cut
/// off; whatever arrives is the first request's response.
fn slow_reader(k: usize, app: &TestApp) {
    let mut stream = connect_with_small_window(app.addr);
    let auth = bearer("iso-big");
    for n in 0..3 {
        let rid = format!("X-Request-Id: slow-{k}-{n}\r\n");
        stream.write_all(&request("GET", "/api/tasks?limit=1000", &format!("{auth}{rid}"), None)).unwrap();
    }
    if k.is_multiple_of(2) {
        std::thread::sleep(Duration::from_secs(5)); // longer than REQUEST_TIMEOUT_SECONDS
    }
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let (mut got, mut chunk) = (Vec::new(), [0u8; 512]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) if !got.is_empty() || started.elapsed() > Duration::from_secs(6) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("the response began");
    let head = parse_reply(&got[..head_end + 4]);
    assert_eq!((head.status, head.header("X-Request-Id")), (200, Some(format!("slow-{k}-0").as_str())));
}

#[test]
fn every_response_reaches_the_connection_that_asked_under_hostile_traffic() {
    let overrides = [("WORKERS", "4"), ("REQUEST_TIMEOUT_SECONDS", "2"), ("IDLE_TIMEOUT_SECONDS", "5")];
    let app = spawn_app_with(&overrides, http::dispatch);
    seed_big_user(&app, "iso-big", 400); // a page of about 500 KB
    let done = AtomicBool::new(false);
    let created: Vec<usize> = std::thread::scope(|s| {
        let app = &app;
        let done = &done;
        let hostile: Vec<_> = (0..6)
            .map(|j| {
                s.spawn(move || {
                    let mut case = j;
                    while !done.load(Ordering::SeqCst) {
                        hostile_once(j, case, app);
                        case += 1;
                    }
                    case - j
                })
            })
            .collect();
        let slow: Vec<_> = (0..4).map(|k| s.spawn(move || slow_reader(k, app))).collect();
        let clients: Vec<_> = (0..24).map(|i| s.spawn(move || good_client(i, app))).collect();
        let created = clients.into_iter().map(|c| c.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        for thread in hostile {
            assert!(thread.join().unwrap() >= 10, "every kind of misbehaviour ran at least once");
        }
        slow.into_iter().for_each(|thread| thread.join().unwrap());
        created
    });
    // In the database, every task a client created is that client's, and nothing smuggled ran.
    let rows = app.db.client().query("SELECT user_id, title FROM tasks WHERE user_id <> 'iso-big'", &[]).unwrap();
    let mut per_user: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let (user, title): (String, String) = (row.get(0), row.get(1));
        assert_ne!(title, "smuggled", "a smuggled request ran");
        let owner = title.split(' ').next().unwrap();
        assert_eq!(owner, user, "task {title:?} was stored under another user's token");
        *per_user.entry(user).or_default() += 1;
    }
    for (i, count) in created.iter().enumerate() {
        assert_eq!(per_user.get(&format!("iso-{i}")).copied().unwrap_or(0), *count, "iso-{i}'s tasks");
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn a_slow_reader_holds_no_worker_and_is_cut_off_at_the_deadline() {
    let app = spawn_app_with(&[("WORKERS", "1"), ("REQUEST_TIMEOUT_SECONDS", "3")], http::dispatch);
    seed_big_user(&app, "iso-big", 1000);
    let page = request("GET", "/api/tasks?limit=1000", &bearer("iso-big"), None); // about 1.2 MB
    // More pages than the kernel's send buffer holds (it grows up to tcp_wmem's maximum): the
    // write of one of them blocks, since the client reads none.
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    let pages = wmem.split_whitespace().nth(2).unwrap().parse::<usize>().unwrap() / 1_000_000 + 3;
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let stream = connect_with_small_window(app.addr);
            (&stream).write_all(&page.repeat(pages)).unwrap();
            stream
        })
        .collect();
    for stream in &stalled {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.peek(&mut [0u8; 1]).unwrap(); // its first page is being written
    }
    let writing = Instant::now();
    // One client never reads until the write's deadline has passed; the other reads a little
    // all along, so every single write makes progress, but never the whole page in time.
    let readers: Vec<_> = stalled
        .into_iter()
        .enumerate()
        .map(|(n, mut stream)| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut chunk = vec![0u8; 16 * 1024];
                while writing.elapsed() < Duration::from_secs(6) {
                    if n == 1 {
                        let read = stream.read(&mut chunk).unwrap_or(0);
                        got.extend_from_slice(&chunk[..read]);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = stream.read_to_end(&mut got); // ends: the server cut the connection off
                got
            })
        })
        .collect();
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(app.get("/api/tasks", "u1").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "others waited for slow readers: {:?}", started.elapsed());
    for got in readers.into_iter().map(|reader| reader.join().unwrap()) {
        let head = parse_reply(&got[..got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4]);
        let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
        assert!(length > 1_000_000, "a large page: {length}");
        assert!(got.len() < pages * length, "cut off before the last page ({} of {} bytes)", got.len(), pages * length);
    }
}

/// A handler that answers with the request headers it was given.
fn echo_headers(_: &App, request: &Request, _: &Route, _: Action, _: Option<Token>) -> Result<Response, ApiError> {
    let headers: Vec<(&str, &str)> = request.headers().collect();
    Ok(Response::json(&headers))
}

#[test]
fn hop_by_hop_and_framing_fields_never_reach_a_handler() {
    let app = spawn_app_with(&[], echo_headers);
    let mut client = Client::connect(app.addr);
    client.send(
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
          Trailer: X-T\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-Hop: 1\r\nExpect: 100-continue\r\n\
          Transfer-Encoding: chunked\r\nX-End-To-End: kept\r\n\r\n",
    );
    let interim = client.response(false).unwrap();
    assert_eq!(interim.status, 100, "Expect: 100-continue is answered by the transport");
    client.send(b"2\r\n{}\r\n0\r\nX-T: trailer\r\n\r\n");
    let reply = client.response(false).unwrap();
    let names: Vec<String> =
        reply.json().as_array().unwrap().iter().map(|h| h[0].as_str().unwrap().to_owned()).collect();
    // The request id and the length are the transport's: the id given or a new one, the
    // length of the body read.
    assert_eq!(names, ["Host", "X-End-To-End", "X-Request-Id", "Content-Length"]);
}

#[test]
fn http_1_1_needs_exactly_one_host_and_targets_have_no_control_bytes() {
    let app = spawn_app();
    for head in [
        &b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        b"GET /health\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /health\x7f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /api/tasks?q=a\x1bb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /health\rx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        raw(app.addr, head).error(400, "bad_request");
    }
    assert_eq!(raw(app.addr, b"GET /health HTTP/1.0\r\n\r\n").status, 200, "HTTP/1.0 may leave Host out");
    assert_eq!(raw(app.addr, b"GET /health HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n").status, 200);
}

#[test]
fn transfer_codings_other_than_a_final_chunked_are_refused_and_empty_lines_before_a_request_ignored() {
    let app = spawn_app();
    for (coding, status) in [("identity", 400), ("chunked, gzip", 400), ("gzip, chunked", 501)] {
        let head = format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n\r\n");
        assert_eq!(raw(app.addr, head.as_bytes()).status, status, "{coding}");
    }
    let mut client = Client::connect(app.addr);
    client.send(b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n\r\n");
    assert_eq!(client.response(false).unwrap().status, 200);
    client.send(&request("GET", "/health", "", None));
    assert_eq!(client.response(false).unwrap().status, 200, "a CRLF after a request is not the next one");
}

#[test]
fn a_request_that_gets_no_worker_in_time_is_a_503_with_its_own_request_id() {
    let app = spawn_app_with(&[("WORKERS", "1"), ("REQUEST_TIMEOUT_SECONDS", "1")], http::dispatch);
    let mut lock = app.db.client();
    lock.batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE").unwrap();
    let mut stuck = Client::connect(app.addr);
    let auth = bearer("u1");
    stuck.send(&request("GET", "/api/tasks", &format!("{auth}X-Request-Id: stuck-1\r\n"), None)); // the worker
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = Client::connect(app.addr);
    waiting.send(&request("HEAD", "/health", "X-Request-Id: mine-1\r\n", None));
    let reply = waiting.response(true).unwrap();
    assert_eq!((reply.status, reply.header("X-Request-Id")), (503, Some("mine-1")));
    assert_eq!((reply.header("Retry-After"), reply.header("Connection")), (Some("1"), Some("close")));
    let mut rest = Vec::new();
    let _ = waiting.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no body for HEAD: {:?}", String::from_utf8_lossy(&rest));
    // The handler holding the worker has not answered a request timeout after its deadline.
    let reply = stuck.response(false).unwrap();
    assert_eq!((reply.status, reply.header("X-Request-Id")), (503, Some("stuck-1")), "given up, under its own id");
    lock.batch_execute("COMMIT").unwrap();
    assert_eq!(app.get("/api/tasks", "u1").status, 200);
}

#[test]
fn an_http_1_0_request_with_a_chunked_body_closes_the_connection_after_its_response() {
    let app = spawn_app();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    let body = r#"{"title":"from 1.0"}"#;
    let request = format!(
        "POST /api/tasks HTTP/1.0\r\n{}Connection: keep-alive\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\nGET /health HTTP/1.0\r\n\r\n",
        bearer("u1"),
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 201 ") && text.contains("Connection: close\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "the pipelined request was not read: {text}");
}

#[test]
fn responses_to_head_and_204_have_no_body_and_a_204_no_length() {
    let app = spawn_app();
    let task = app.create("u1", "to delete");
    let mut client = Client::connect(app.addr);
    let auth = bearer("u1");
    let mut bytes = request("HEAD", "/api/tasks", &auth, None);
    bytes.extend(request("DELETE", &format!("/api/tasks/{}", task["id"]), &auth, None));
    bytes.extend(request("GET", "/health", "", None));
    client.send(&bytes);
    let head = client.response(true).unwrap();
    assert_eq!(head.status, 405);
    assert!(head.header("Content-Length").is_some_and(|l| l != "0"), "the length the body would have");
    let deleted = client.response(false).unwrap();
    assert_eq!((deleted.status, deleted.header("Content-Length")), (204, None));
    let health = client.response(false).unwrap();
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})), "framing held across both");
    assert_eq!(health.header("Server"), None, "no Server header");
    assert!(health.header("Date").is_some_and(|d| d.ends_with(" GMT")));
}

#[test]
fn an_error_that_closes_the_connection_is_read_by_the_client_not_reset() {
    let app = spawn_app();
    let auth = bearer("u1");
    let oversized_body = {
        let mut bytes =
            format!("POST /api/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n").into_bytes();
        bytes.extend_from_slice(b"Content-Length: 1000000\r\n\r\n");
        bytes.resize(bytes.len() + 1_000_000, b' ');
        (bytes, 413, "payload_too_large")
    };
    let oversized_head = (format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(1_000_000)).into_bytes(), 431, "");
    let malformed = ([&b"GET / HTTP/1.1\r\nBad Line\r\n\r\n"[..], &[b'x'; 1_000_000]].concat(), 400, "bad_request");
    for (bytes, status, code) in [oversized_body, oversized_head, malformed] {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        // The client goes on sending after the server has answered and stopped reading.
        let writer = stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            let mut writer = writer;
            for piece in bytes.chunks(8192) {
                if writer.write_all(piece).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let read = stream.read_to_end(&mut got);
        sending.join().unwrap();
        assert!(read.is_ok(), "status {status}: the connection was reset ({read:?}) after {} bytes", got.len());
        let reply = parse_reply(&got);
        assert_eq!(reply.status, status);
        if !code.is_empty() {
            reply.error(status, code);
        }
    }
}

#[test]
fn max_connections_is_fitted_to_the_open_file_limit() {
    let db = TestDb::new();
    let vars = base_env(&db.url());
    let lowered = |limit: &str| {
        let mut command = std::process::Command::new("bash");
        command.arg("-c").arg(format!("ulimit {limit} && exec \"$0\"")).arg(env!("CARGO_BIN_EXE_todo-api"));
        command.env_clear().envs(vars.iter()).env("PORT", "0").env("MAX_CONNECTIONS", "4096");
        Process::spawn_command(command)
    };
    // Soft limit 256, hard 20000 or more: raised to fit, no warning.
    let raised = lowered("-Sn 256");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!raised.log.lock().unwrap().contains("MAX_CONNECTIONS lowered"), "{}", raised.log.lock().unwrap());
    let held: Vec<TcpStream> = (0..400).map(|_| TcpStream::connect(raised.addr).unwrap()).collect();
    assert_eq!(raw(raised.addr, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status, 200);
    drop(held);
    // Hard limit 128: lowered, said once, and the connections beyond get a 503, not a dead server.
    let capped = lowered("-n 128");
    let log = capped.log.lock().unwrap().clone();
    assert_eq!(log.matches("MAX_CONNECTIONS lowered from 4096 to ").count(), 1, "{log}");
    let bound: usize = log.split("lowered from 4096 to ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    let held: Vec<TcpStream> = (0..bound).map(|_| TcpStream::connect(capped.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        let reply = raw(capped.addr, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        reply.error(503, "unavailable");
    }
    drop(held);
    let started = Instant::now();
    while raw(capped.addr, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "served again once connections close");
        std::thread::sleep(Duration::from_millis(100));
    }
}
