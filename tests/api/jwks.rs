//! Better Auth's asymmetric tokens through a JWKS of the test's own: every algorithm, key
//! rotation, a JWKS that is down, slow, garbled or huge, and `https` certificate checks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Value, json};
use todo_api::http;

use crate::common::*;

/// What the JWKS server answers.
#[derive(Clone)]
enum Served {
    Keys(Value),
    /// Closes the connection without a word.
    Nothing,
    Garbage,
    /// The keys, after 10 seconds.
    Slow(Value),
}

/// A JWKS server on loopback, answering each request with what `serve` holds now.
struct JwksServer {
    addr: SocketAddr,
    serve: Arc<Mutex<Served>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(served: Served) -> JwksServer {
        JwksServer::on(TcpListener::bind("127.0.0.1:0").unwrap(), served)
    }

    fn on(listener: TcpListener, served: Served) -> JwksServer {
        let addr = listener.local_addr().unwrap();
        let (serve, hits) = (Arc::new(Mutex::new(served)), Arc::new(AtomicUsize::new(0)));
        let (serving, counting) = (Arc::clone(&serve), Arc::clone(&hits));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                counting.fetch_add(1, Ordering::SeqCst);
                let served = serving.lock().unwrap().clone();
                std::thread::spawn(move || answer(stream, &served));
            }
        });
        JwksServer { addr, serve, hits }
    }

    fn url(&self) -> String {
        format!("http://{}/api/auth/jwks", self.addr)
    }

    fn set(&self, served: Served) {
        *self.serve.lock().unwrap() = served;
    }
}

fn answer(mut stream: TcpStream, served: &Served) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let body = match served {
        Served::Nothing => return,
        Served::Garbage => "<html>not a key set</html>".to_owned(),
        Served::Keys(keys) => keys.to_string(),
        Served::Slow(keys) => {
            std::thread::sleep(Duration::from_secs(10));
            keys.to_string()
        }
    };
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let _ = stream.write_all(response.as_bytes());
}

/// An Ed25519 key of the test's own, published under `kid`.
struct EdKey {
    kid: String,
    key: PKey<Private>,
}

impl EdKey {
    fn new(kid: &str) -> EdKey {
        EdKey { kid: kid.to_owned(), key: PKey::generate_ed25519().unwrap() }
    }

    fn jwk(&self) -> Value {
        let x = URL_SAFE_NO_PAD.encode(self.key.raw_public_key().unwrap());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "kid": self.kid})
    }

    /// A token for `user`, valid an hour, as Better Auth's jwt() plugin signs it.
    fn token(&self, user: &str) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.kid}).to_string();
        let claims = json!({"sub": user, "iat": now(), "exp": now() + 3600}).to_string();
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = Signer::new_without_digest(&self.key).unwrap().sign_oneshot_to_vec(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn keys(keys: &[&EdKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
}

/// The status of `GET /api/tasks` with `token`, and how long it took.
fn list_with(app: &TestApp, token: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.call("GET", "/api/tasks").header("Authorization", &format!("Bearer {token}")).send().status;
    (status, started.elapsed())
}

fn ready(addr: SocketAddr) -> (u16, Value) {
    let reply = raw(addr, b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    (reply.status, reply.json())
}

/// Waits up to `limit` for `check` to hold.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn tokens_better_auth_signs_with_every_algorithm_are_accepted() {
    let fixtures: Value = serde_json::from_str(include_str!("../fixtures/jwt.json")).unwrap();
    let server = JwksServer::start(Served::Keys(fixtures["jwks"].clone()));
    let secret = fixtures["secret"].as_str().unwrap();
    let both = spawn_app_with(&[("JWKS_URL", &server.url()), ("BETTER_AUTH_SECRET", secret)], http::dispatch);
    let jwks_only = spawn_app_with(&[("JWKS_URL", &server.url()), ("BETTER_AUTH_SECRET", "")], http::dispatch);
    for app in [&both, &jwks_only] {
        assert!(eventually(Duration::from_secs(5), || ready(app.addr).0 == 200), "the keys were fetched");
        assert_eq!(ready(app.addr).1, json!({"status": "ok", "database": "ok", "jwks": "ok"}));
    }
    for fixture in fixtures["tokens"].as_array().unwrap() {
        let (label, token) = (fixture["label"].as_str().unwrap(), fixture["token"].as_str().unwrap());
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        let asymmetric = header["alg"] != "HS256";
        let reply = both
            .call("POST", "/api/tasks")
            .header("Authorization", &format!("Bearer {token}"))
            .json(&json!({"title": label}))
            .send();
        assert_eq!(reply.status, 201, "{label}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["user_id"], fixture["user_id"], "{label}");
        let (status, _) = list_with(&jwks_only, token);
        assert_eq!(status, if asymmetric { 200 } else { 401 }, "{label}, without BETTER_AUTH_SECRET");
    }
    let plain = spawn_app();
    let asymmetric =
        fixtures["tokens"].as_array().unwrap().iter().find(|f| f["label"].as_str().unwrap().contains("EdDSA"));
    let (status, _) = list_with(&plain, asymmetric.unwrap()["token"].as_str().unwrap());
    assert_eq!(status, 401, "without JWKS_URL, HS256 only, as before");
    assert_eq!(ready(plain.addr).1, json!({"status": "ok", "database": "ok"}), "no jwks member without JWKS_URL");
}

#[test]
fn a_new_key_is_fetched_when_a_token_names_it_and_unknown_kids_cannot_flood_the_jwks() {
    let (old, new) = (EdKey::new("2026-01"), EdKey::new("2026-02"));
    let server = JwksServer::start(Served::Keys(keys(&[&old])));
    let app = spawn_app_with(&[("JWKS_URL", &server.url()), ("BETTER_AUTH_SECRET", "")], http::dispatch);
    assert!(eventually(Duration::from_secs(5), || ready(app.addr).0 == 200));
    let fetched = Instant::now();
    assert_eq!(list_with(&app, &old.token("u1")).0, 200);
    assert_eq!(list_with(&app, &new.token("u1")).0, 401, "not published yet");
    server.set(Served::Keys(keys(&[&old, &new])));
    // Unknown kids within 10 s of the last fetch ask for nothing more.
    for i in 0..50 {
        let (status, took) = list_with(&app, &EdKey::new(&format!("made-up-{i}")).token("u1"));
        assert!(status == 401 && took < Duration::from_secs(1), "{status} in {took:?}");
    }
    assert_eq!(list_with(&app, &new.token("u1")).0, 401, "no refetch within 10 s of the last");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "one fetch, at start-up");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(fetched.elapsed()) + Duration::from_millis(300));
    assert_eq!(list_with(&app, &new.token("u2")).0, 200, "the new key, after one refetch");
    assert_eq!(list_with(&app, &old.token("u2")).0, 200, "the old key, still published");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_jwks_that_is_down_silent_garbled_slow_or_huge_costs_a_401_not_the_server() {
    let key = EdKey::new("k1");
    let many = json!({ "keys": (0..10_000).map(|i| json!({"kty": "OKP", "crv": "Ed25519", "x": key.jwk()["x"], "kid": format!("k{i}")})).collect::<Vec<_>>() });
    // Down: nothing listens on the port yet.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/api/auth/jwks", reserved.local_addr().unwrap());
    drop(reserved);
    let faults = [Served::Nothing, Served::Garbage, Served::Slow(keys(&[&key])), Served::Keys(many)];
    let servers: Vec<JwksServer> = faults.into_iter().map(JwksServer::start).collect();
    let urls: Vec<String> = std::iter::once(down_url.clone()).chain(servers.iter().map(JwksServer::url)).collect();
    std::thread::scope(|scope| {
        for (n, url) in urls.iter().enumerate() {
            let (key, servers, down_url) = (&key, &servers, &down_url);
            scope.spawn(move || {
                let app = spawn_app_with(&[("JWKS_URL", url), ("BETTER_AUTH_SECRET", "")], http::dispatch);
                std::thread::sleep(Duration::from_millis(500));
                let (status, body) = ready(app.addr);
                assert_eq!((status, body["jwks"].as_str()), (503, Some("unavailable")), "fault {n}");
                let (status, took) = list_with(&app, &key.token("u1"));
                assert!(status == 401 && took < Duration::from_secs(3), "fault {n}: {status} after {took:?}");
                assert_eq!(app.call("GET", "/health").send().status, 200, "fault {n}");
                // The JWKS comes back: the server recovers within a retry, without a restart.
                let _revived = match n {
                    0 => Some(JwksServer::on(
                        TcpListener::bind(&down_url[7..down_url.len() - 14]).unwrap(),
                        Served::Keys(keys(&[key])),
                    )),
                    _ => {
                        servers[n - 1].set(Served::Keys(keys(&[key])));
                        None
                    }
                };
                let recovered = eventually(Duration::from_secs(25), || list_with(&app, &key.token("u1")).0 == 200);
                assert!(recovered, "fault {n}: tokens verify once the JWKS answers");
                assert_eq!(ready(app.addr).0, 200, "fault {n}");
            });
        }
    });
}

#[test]
fn an_https_jwks_must_present_a_certificate_for_its_host_that_the_system_trusts() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("jwks-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let key = EdKey::new("tls-1");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut acceptor = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls()).unwrap();
    acceptor.set_private_key_file(&key_file, openssl::ssl::SslFiletype::PEM).unwrap();
    acceptor.set_certificate_chain_file(&cert).unwrap();
    let (acceptor, published) = (acceptor.build(), keys(&[&key]));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            if let Ok(mut tls) = acceptor.accept(stream) {
                let body = published.to_string();
                let mut head = [0u8; 4096];
                let _ = tls.read(&mut head);
                let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        }
    });
    let db = TestDb::new();
    let vars: Vec<(String, String)> =
        base_env(&db.url()).into_iter().filter(|(k, _)| k != "BETTER_AUTH_SECRET").collect();
    let start = |url: String, trust: bool| {
        let mut vars = vars.clone();
        vars.push(("JWKS_URL".into(), url));
        if trust {
            vars.push(("SSL_CERT_FILE".into(), cert.display().to_string()));
        }
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Process::spawn(&refs)
    };
    let trusted = start(format!("https://localhost:{port}/jwks"), true);
    let untrusted = start(format!("https://localhost:{port}/jwks"), false);
    let wrong_host = start(format!("https://127.0.0.1:{port}/jwks"), true);
    assert!(
        eventually(Duration::from_secs(5), || ready(trusted.addr).0 == 200),
        "a certificate it trusts, for its host"
    );
    std::thread::sleep(Duration::from_millis(500));
    for (process, why) in [(&untrusted, "certificate verify failed"), (&wrong_host, "certificate verify failed")] {
        assert_eq!(ready(process.addr).1["jwks"], "unavailable");
        let log = process.log.lock().unwrap().clone();
        assert!(log.contains("JWKS: fetch from") && log.contains(why), "{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
