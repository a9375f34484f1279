//! The test harness: a fresh database per test (copied from a migrated template), the real
//! server on an ephemeral port, and a small HTTP/1.1 client over a raw socket.
#![allow(dead_code)] // each test module uses a different part

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use postgres::NoTls;
use serde_json::Value;
use sha2::Sha256;
use todo_api::config::Config;
use todo_api::http::{self, Dispatch};

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
pub const PREVIOUS_SECRET: &str = "previous-secret-0123456789abcdef012345";

/// The superuser URL of the test server (scripts/test.sh sets PG_URL).
pub fn admin_url() -> String {
    std::env::var("PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn url_of(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{database}")
}

pub fn admin() -> postgres::Client {
    postgres::Client::connect(&admin_url(), NoTls).expect("the test PostgreSQL server is reachable (scripts/test.sh)")
}

/// Drops databases left by test processes that no longer run.
fn sweep_leftovers(client: &mut postgres::Client) {
    let rows = client.query("SELECT datname FROM pg_database WHERE datname ~ '^todo_(tpl|test)_[0-9]+_'", &[]).unwrap();
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

/// The migrated template this process copies test databases from.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut client = admin();
        sweep_leftovers(&mut client);
        let name = format!("todo_tpl_{}_0", std::process::id());
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).unwrap();
        let mut db = postgres::Client::connect(&url_of(&name), NoTls).unwrap();
        todo_api::db::migrate(&mut db).unwrap();
        name
    })
}

/// A fresh, migrated database, dropped with the value.
pub struct TestDb {
    pub name: String,
}

/// The number of the next test database of this process.
static NEXT: AtomicU32 = AtomicU32::new(1);

impl TestDb {
    pub fn new() -> TestDb {
        static LOCK: Mutex<()> = Mutex::new(());
        let template = template();
        let name = format!("todo_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        admin().batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).unwrap();
        TestDb { name }
    }

    /// A fresh database copied from `template0` with these `CREATE DATABASE` options (encoding,
    /// locale, locale provider), not migrated.
    pub fn bare(options: &str) -> TestDb {
        let name = format!("todo_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        admin().batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0 {options}")).unwrap();
        TestDb { name }
    }

    pub fn url(&self) -> String {
        url_of(&self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), NoTls).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
    }
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    running: Option<todo_api::Running>,
}

impl TestApp {
    /// Takes the server out, to stop it from another thread.
    pub fn take_running(&mut self) -> todo_api::Running {
        self.running.take().expect("the server is running")
    }

    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop(); // before the database goes
    }
}

/// The app's variables for a test database. With `PG_APP_URL` set (scripts/pgbouncer-check.sh),
/// the app reaches the database through that server (a pooler) and migrates directly.
pub fn base_env(database_url: &str) -> HashMap<String, String> {
    let through = std::env::var("PG_APP_URL").ok().map(|base| {
        let base = base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b).to_owned();
        let name = database_url.rsplit('/').next().unwrap_or_default();
        format!("{base}/{name}")
    });
    [
        ("DATABASE_URL", through.as_deref().unwrap_or(database_url)),
        ("DATABASE_MIGRATION_URL", database_url),
        ("BETTER_AUTH_SECRET", SECRET),
        ("PORT", "0"),
        ("DB_POOL_SIZE", "4"),
        ("WORKERS", "8"),
        ("CORS_ORIGINS", "http://localhost:3000,https://app.example"),
        // Limits on (every request goes through the limiter) but out of reach: tests that are
        // about limits set their own.
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn config(vars: &HashMap<String, String>) -> Config {
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(&[], http::dispatch)
}

/// A server with some variables changed from `base_env` (`{db}` stands for the test database's
/// URL), or an empty value to remove one.
pub fn spawn_app_with(overrides: &[(&str, &str)], dispatch: Dispatch) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = TestDb::new();
    let mut vars = base_env(&db.url());
    for (k, v) in overrides {
        if v.is_empty() {
            vars.remove(*k);
        } else {
            vars.insert((*k).to_owned(), v.replace("{db}", &db.url()));
        }
    }
    if overrides.iter().any(|(k, _)| *k == "DATABASE_URL")
        && !overrides.iter().any(|(k, _)| *k == "DATABASE_MIGRATION_URL")
    {
        let url = vars["DATABASE_URL"].clone();
        vars.insert("DATABASE_MIGRATION_URL".to_owned(), url);
    }
    let running = todo_api::start(&config(&vars), dispatch).unwrap();
    TestApp { addr: running.addr, db, running: Some(running) }
}

/// The first column of the first row of a simple-protocol answer.
pub fn first_value(messages: &[postgres::SimpleQueryMessage]) -> String {
    let value = messages.iter().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    value.expect("a row")
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An HS256 token over any claims.
pub fn sign(claims: &Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// A valid token for `user`, good for an hour.
pub fn token(user: &str) -> String {
    sign(&serde_json::json!({"sub": user, "exp": now() + 3600, "iat": now()}), SECRET)
}

/// An HTTP response as read off the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and the contract's error body; returns the body.
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "status; body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("Content-Type"), Some("application/json"));
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["detail"].is_string(), "{body}");
        assert_eq!(body["request_id"].as_str(), self.header("X-Request-Id"), "{body}");
        body
    }
}

/// Sends raw bytes, reads the whole response (the request should ask to close).
pub fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes); // a reset after the response is fine
    parse_reply(&bytes)
}

pub fn parse_reply(bytes: &[u8]) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = bytes[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("Transfer-Encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// A request builder over `raw`.
pub struct Call<'a> {
    app: &'a TestApp,
    method: &'a str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl TestApp {
    pub fn call<'a>(&'a self, method: &'a str, path: &str) -> Call<'a> {
        Call { app: self, method, path: path.to_owned(), headers: Vec::new(), body: None }
    }

    pub fn get(&self, path: &str, user: &str) -> Reply {
        self.call("GET", path).auth(user).send()
    }

    pub fn send_json(&self, method: &str, path: &str, user: &str, body: Value) -> Reply {
        self.call(method, path).auth(user).json(&body).send()
    }

    /// Creates a task for `user`; returns it.
    pub fn create(&self, user: &str, title: &str) -> Value {
        let reply = self.send_json("POST", "/api/tasks", user, serde_json::json!({"title": title}));
        assert_eq!(reply.status, 201, "{:?}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn auth(self, user: &str) -> Self {
        let token = token(user);
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &Value) -> Self {
        self.header("Content-Type", "application/json").body(body.to_string().as_bytes())
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = Some(body.to_vec());
        self
    }

    pub fn send(self) -> Reply {
        let mut request = format!("{} {} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.unwrap_or_default();
        if !body.is_empty() || matches!(self.method, "POST" | "PUT" | "PATCH") {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&body);
        raw(self.app.addr, &bytes)
    }
}

/// A PostgreSQL cluster of the test's own (initdb/pg_ctl, via scripts/pg.sh), so that the test
/// can stop and start it. Removed on drop.
pub struct Cluster {
    pub port: u16,
    dir: std::path::PathBuf,
    /// Its data directory (where `server.crt` and `server.key` are).
    pub data: String,
}

fn pg_sh(command: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
    let output = std::process::Command::new("bash").arg("-c").arg(format!(". {script} && {command}")).output().unwrap();
    assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Cluster {
    pub fn start() -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-{}-{port}", std::process::id()));
        let data = pg_sh(&format!("start_cluster {} {port}", dir.display()));
        Cluster { port, dir, data }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        pg_sh(&format!("stop_cluster {}", self.data));
    }

    pub fn restart(&self) {
        pg_sh(&format!("start_cluster {} {}", self.dir.display(), self.port));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(std::path::Path::new(&self.data).parent().unwrap_or(&self.dir));
    }
}

/// The `todo-api` binary as a child process, with these variables; waits until it listens.
pub struct Process {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub log: std::sync::Arc<Mutex<String>>,
}

impl Process {
    pub fn spawn(vars: &[(&str, &str)]) -> Process {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_todo-api"));
        command.env_clear().envs(vars.iter().copied()).env("PORT", "0");
        Process::spawn_command(command)
    }

    /// Runs `command` (the binary, or a shell that execs it) in the test directory.
    pub fn spawn_command(mut command: std::process::Command) -> Process {
        use std::io::BufRead;
        let mut child =
            command.current_dir(env!("CARGO_TARGET_TMPDIR")).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).expect("the server starts").parse().unwrap();
        Process { child, addr, log }
    }

    pub fn signal(&self, name: &str) {
        let status =
            std::process::Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive client: requests written on one socket, responses read off it one at a time.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next response, framed as the server frames them: by `Content-Length`, and without a
    /// body for a 204 or when `to_head` (the answer to a `HEAD`). `None` if the connection closed
    /// before a whole response arrived.
    pub fn response(&mut self, to_head: bool) -> Option<Reply> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = parse_reply(&self.buf[..end + 4]);
                let length: usize = head.header("Content-Length").map_or(0, |v| v.parse().unwrap());
                let length = if to_head || head.status == 204 { 0 } else { length };
                if self.buf.len() >= end + 4 + length {
                    let body = self.buf[end + 4..end + 4 + length].to_vec();
                    self.buf.drain(..end + 4 + length);
                    return Some(Reply { body, ..head });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A request as bytes: `extra` header lines (each ending in CRLF), a JSON body when given.
pub fn request(method: &str, path: &str, extra: &str, body: Option<&Value>) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let framing = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
    };
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}{framing}\r\n{body}").into_bytes()
}

/// A connection whose receive buffer (and so the window it offers) is a few KiB: a server
/// writing a large response to it blocks rather than filling the kernel's buffers.
pub fn connect_with_small_window(addr: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
    let socket = socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&socket, 4096).unwrap();
    connect(&socket, &addr).unwrap();
    TcpStream::from(socket)
}
