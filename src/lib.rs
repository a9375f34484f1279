//! todo-api: a REST backend for a multi-user Todo app, over PostgreSQL.
//!
//! `start` is the whole life of a server: check the database (migrations, statements),
//! build the pool, bind, and serve until stopped.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod guard;
pub mod health;
pub mod http;
pub mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::auth::Verifier;
use crate::config::{Config, Cors};
use crate::guard::{Guard, Limits};

/// How long a stop waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every request handler shares.
pub struct App {
    pub pool: db::Pool,
    pub verifier: Verifier,
    pub cors: Cors,
}

/// A server that is accepting requests on `addr`.
pub struct Running {
    pub addr: SocketAddr,
    guard: Guard,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (for up to `DRAIN_TIMEOUT`), then
    /// returns; the pool closes with the last handler.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        if !self.guard.stop(DRAIN_TIMEOUT) {
            log::warn!("{} connections still open after {DRAIN_TIMEOUT:?}", self.guard.open_connections());
        }
        self.stop.store(true, Ordering::SeqCst);
        // rouille waits for every handler; one stuck on a frozen database must not hold the
        // stop past the drain timeout (the process exits, and the thread with it).
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        match self.thread.take() {
            Some(thread) if thread.is_finished() => drop(thread.join()),
            Some(_) => log::warn!("requests still running after {DRAIN_TIMEOUT:?}; not waiting for them"),
            None => {}
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Prepares the database, then serves `dispatch` on the configured address.
pub fn start(config: &Config, dispatch: http::Dispatch) -> Result<Running, String> {
    let mut client = db::connect(&config.migration_database)?;
    db::migrate(&mut client)?;
    db::check_statements(&mut client)?;
    drop(client);

    let app = Arc::new(App {
        pool: db::pool(config)?,
        verifier: Verifier::new(
            &config.secret,
            config.secret_previous.as_deref(),
            config.jwt_leeway_seconds,
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
        ),
        cors: config.cors.clone(),
    });
    let listener = guard::listen(&config.host, config.port)
        .map_err(|e| format!("cannot listen on {}:{} (HOST, PORT): {e}", config.host, config.port))?;
    // rouille listens on loopback only; clients reach it through the guard.
    let server = rouille::Server::new("127.0.0.1:0", move |request| http::handle(&app, request, dispatch))
        .map_err(|e| format!("cannot listen on loopback: {e}"))?
        .pool_size(config.workers);
    let limits = Limits {
        max_connections: config.max_connections,
        // Enough that a worker finishing a request finds the next one queued in rouille.
        backends: config.workers * 4,
        idle_timeout: config.idle_timeout,
        request_timeout: config.request_timeout,
    };
    let guard = Guard::start(listener, server.server_addr(), limits)
        .map_err(|e| format!("cannot start the connection guard: {e}"))?;
    let addr = guard.addr();
    log::info!("listening on http://{addr}");

    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("accept".to_owned())
        .spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                server.poll_timeout(Duration::from_millis(100));
            }
            server.poll_timeout(Duration::from_millis(100));
            server.join();
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    Ok(Running { addr, guard, stop, thread: Some(thread) })
}
