//! todo-api: a REST backend for a multi-user Todo app, over PostgreSQL.
//!
//! `start` is the whole life of a server: check the database (migrations, statements),
//! build the pool, bind, and serve until stopped.
#![forbid(unsafe_code)]

pub mod auth;
pub mod chunked;
pub mod config;
pub mod db;
pub mod error;
pub mod head;
pub mod health;
pub mod http;
pub mod jwks;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod tasks;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::auth::Verifier;
use crate::config::{Config, Cors};
use crate::error::ApiError;
use crate::jwks::Jwks;
use crate::limits::{Limiter, Net};
use crate::metrics::Metrics;
use crate::server::{Limits, Server};

/// How long a stop waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Locks a mutex, and takes over one a panic left poisoned: no lock here guards data a panic
/// could leave half-changed (each holder makes its change in one step).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every request handler shares.
pub struct App {
    pub pool: db::Pool,
    /// `/health/ready`'s own connection and last result.
    pub readiness: health::Readiness,
    pub verifier: Verifier,
    pub cors: Cors,
    /// `None` when `RATE_LIMIT_PER_MINUTE=0`.
    pub limiter: Option<Limiter>,
    pub trusted_proxies: Vec<Net>,
    pub metrics: Arc<Metrics>,
    /// Who may read `/metrics`; `None` when `METRICS=false`.
    pub metrics_allow: Option<Vec<Net>>,
}

impl App {
    /// A pooled database connection (503 when none frees up in time); waiters are counted.
    pub fn connection(&self) -> Result<r2d2::PooledConnection<db::Manager>, ApiError> {
        self.metrics.pool_waiting.fetch_add(1, Ordering::Relaxed);
        let connection = self.pool.get();
        self.metrics.pool_waiting.fetch_sub(1, Ordering::Relaxed);
        Ok(connection?)
    }
}

/// A server that is accepting requests on `addr`; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    server: Server,
}

impl Running {
    /// Stops accepting and lets requests in flight finish (for up to `DRAIN_TIMEOUT`); the pool
    /// closes with the last handler. Dropping it does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.server.stop(DRAIN_TIMEOUT) {
            log::warn!("connections still open after {DRAIN_TIMEOUT:?}; not waiting for them");
        }
    }
}

/// Prepares the database, then serves `dispatch` on the configured address.
pub fn start(config: &Config, dispatch: http::Dispatch) -> Result<Running, String> {
    let mut client =
        db::connect(&config.migration_database, &config.migration_database_tls, config.migration_variable)?;
    db::migrate(&mut client)?;
    db::check_statements(&mut client)?;
    drop(client);

    let app = App {
        pool: db::pool(config)?,
        readiness: health::Readiness::new(db::Connector::readiness(config)?),
        verifier: {
            let verifier = Verifier::new(
                config.secret.as_ref().map_or(&[][..], |secret| &secret.0),
                config.secret_previous.as_ref().map(|secret| secret.0.as_slice()),
                config.jwt_leeway_seconds,
                config.jwt_issuer.clone(),
                config.jwt_audience.clone(),
            );
            match &config.jwks {
                Some(endpoint) => verifier.with_jwks(Jwks::start(endpoint.clone(), config.jwks_refresh)),
                None => verifier,
            }
        },
        cors: config.cors.clone(),
        limiter: (config.rate_per_minute > 0).then(|| Limiter::new(config.rate_per_minute, config.rate_burst)),
        trusted_proxies: config.trusted_proxies.clone(),
        metrics: Arc::new(Metrics::default()),
        metrics_allow: config.metrics.then(|| config.metrics_allow.clone()),
    };
    let metrics = Arc::clone(&app.metrics);
    let listener = server::listen(&config.host, config.port)
        .map_err(|e| format!("cannot listen on {}:{} (HOST, PORT): {e}", config.host, config.port))?;
    // Besides client connections: four per database connection, the pool's and readiness's (its
    // socket, and its client's event loop: two epoll descriptors and an eventfd; counted), the
    // listener, logs, and connections being closed.
    let reserve = 4 * (config.pool_size as usize + 1) + 64;
    let limits = Limits {
        max_connections: server::fit_open_files(config.max_connections, reserve),
        workers: config.workers,
        idle_timeout: config.idle_timeout,
        request_timeout: config.request_timeout,
    };
    let server =
        Server::start(listener, limits, metrics, Box::new(move |request| http::handle(&app, request, dispatch)))
            .map_err(|e| format!("cannot start the server: {e}"))?;
    log::info!("listening on http://{}", server.addr());
    Ok(Running { addr: server.addr(), server })
}
