//! `/health` (liveness, no database) and `/health/ready` (the database answers within 2 s,
//! and, with `JWKS_URL`, Better Auth's keys have been fetched).
//!
//! Invariants a reviewer can check in this file alone:
//! - readiness asks the database on a connection of its own, never one of the request pool's;
//! - at most one check runs at a time, and a result is reused for `READY_FRESH`: a flood of
//!   probes costs the database about one `SELECT 1` a second;
//! - a probe waits only for a check it runs itself (and the first probe ever for the first
//!   check); each check takes at most `READY_TIMEOUT`, its connection's deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use rouille::Response;
use serde::Serialize;

use crate::error::ApiError;
use crate::wire::json;
use crate::{App, db, lock};

/// How long readiness may wait for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a check's result answers probes before the database is asked again.
const READY_FRESH: Duration = Duration::from_secs(1);

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

/// The database side of readiness: its connection, and the last check's result.
pub struct Readiness {
    connector: db::Connector,
    /// The check's connection, kept between checks; held by the one check running.
    connection: Mutex<Option<db::Conn>>,
    /// When the last check ended, and what it found.
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub fn new(connector: db::Connector) -> Readiness {
        Readiness { connector, connection: Mutex::new(None), last: Mutex::new(None) }
    }

    /// When the last check ended, and what it found.
    fn last(&self) -> Option<(Instant, Result<(), String>)> {
        lock(&self.last).clone()
    }

    /// The last check's result, if it is under `READY_FRESH` old.
    fn fresh(&self) -> Option<Result<(), String>> {
        self.last().filter(|(at, _)| at.elapsed() < READY_FRESH).map(|(_, result)| result)
    }

    /// Whether the database answers: a result under `READY_FRESH` old; else, while another
    /// check runs, the last result (the first probe ever waits for the first check); else a
    /// check of its own.
    fn database(&self) -> Result<(), String> {
        if let Some(result) = self.fresh() {
            return result;
        }
        let mut connection = match self.connection.try_lock() {
            Ok(connection) => connection,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => match self.last() {
                Some((_, result)) => return result,
                None => lock(&self.connection),
            },
        };
        // A check may have ended while this probe waited for the lock.
        if let Some(result) = self.fresh() {
            return result;
        }
        let result = self.check(&mut connection);
        if let Err(cause) = &result {
            log::warn!("readiness check failed: {cause}");
        }
        *lock(&self.last) = Some((Instant::now(), result.clone()));
        result
    }

    /// One `SELECT 1` within `READY_TIMEOUT`, connecting first if need be. A kept connection
    /// that fails without running out of time (the server restarted since) is replaced at once.
    fn check(&self, connection: &mut Option<db::Conn>) -> Result<(), String> {
        let started = Instant::now();
        let left = || READY_TIMEOUT.saturating_sub(started.elapsed());
        if let Some(conn) = connection.as_mut() {
            match conn.ping(db::READY.text, left()) {
                Ok(()) => return Ok(()),
                Err(e @ db::QueryError::Deadline(_)) => {
                    *connection = None;
                    return Err(e.to_string());
                }
                Err(_) => *connection = None,
            }
        }
        let mut conn = self.connector.open(left()).map_err(|e| e.to_string())?;
        conn.ping(db::READY.text, left()).map_err(|e| e.to_string())?;
        *connection = Some(conn);
        Ok(())
    }
}

/// 200 when the database answers (see `Readiness`) and, with `JWKS_URL`, the keys are in; else
/// 503.
pub fn ready(app: &App) -> Result<Response, ApiError> {
    let answered = app.readiness.database();
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
