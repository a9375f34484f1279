//! `/health` (liveness, no database) and `/health/ready` (the database answers within 2 s,
//! and, with `JWKS_URL`, Better Auth's keys have been fetched).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rouille::Response;
use serde::Serialize;

use crate::error::ApiError;
use crate::wire::json;
use crate::{App, db};

/// How long readiness may wait for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
pub struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    /// With `JWKS_URL`: whether its keys have been fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<&'static str>,
}

impl Status {
    pub fn ok() -> Status {
        Status { status: "ok", database: None, jwks: None }
    }
}

/// 200 when a pooled connection answers a query within the timeout, else 503. The check runs
/// on a thread of its own, so that a database that accepts but never answers cannot hold the
/// response past the deadline.
pub fn ready(app: &App) -> Result<Response, ApiError> {
    let (sender, answer) = mpsc::channel();
    let pool = app.pool.clone();
    let check = move || {
        let started = Instant::now();
        let result = pool.get_timeout(READY_TIMEOUT).map_err(|e| e.to_string()).and_then(|mut client| {
            let left = READY_TIMEOUT.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
            client
                .is_valid(left)
                .and_then(|()| client.simple_query(db::READY.text).map(drop))
                .map_err(|e| e.to_string())
        });
        let _ = sender.send(result);
    };
    let answered = match std::thread::Builder::new().name("ready".to_owned()).spawn(check) {
        Ok(_) => answer.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| Err("no answer within 2 s".to_owned())),
        Err(e) => Err(format!("cannot start the check: {e}")),
    };
    if let Err(cause) = &answered {
        log::warn!("readiness check failed: {cause}");
    }
    let jwks = app.verifier.jwks().map(|jwks| if jwks.is_ready() { "ok" } else { "unavailable" });
    let database = if answered.is_ok() { "ok" } else { "unreachable" };
    Ok(match (database, jwks) {
        ("ok", None | Some("ok")) => json(200, &Status { status: "ok", database: Some(database), jwks }),
        _ => json(503, &Status { status: "unavailable", database: Some(database), jwks })
            .with_unique_header("Retry-After", "1"),
    })
}

/// `todo-api healthcheck`: whether the server at `addr` answers `GET /health` with 200 within
/// 2 s. For container health checks, which cannot rely on curl being installed.
pub fn probe(addr: SocketAddr) -> bool {
    let answer = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, READY_TIMEOUT)?;
        stream.set_read_timeout(Some(READY_TIMEOUT))?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = vec![0; 12];
        stream.read_exact(&mut head)?;
        Ok(head)
    };
    answer().is_ok_and(|head| head.starts_with(b"HTTP/1.1 200"))
}
