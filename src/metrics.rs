//! `/metrics`: counters and histograms kept in atomics, written out in Prometheus text format
//! 0.0.4 by hand.
//!
//! Invariants a reviewer can check in this file alone:
//! - every series is a fixed slot (route template, method, status class, rejection kind are
//!   closed sets): nothing a client sends creates a series, so the output is bounded;
//! - recording is a few relaxed atomic additions: no lock on the request path;
//! - label values are constants from this file, so none needs escaping.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use rouille::Response;

use crate::App;
use crate::auth::AuthError;
use crate::error::ApiError;

/// `GET /metrics` for a client at `client`: the page when metrics are on and the address is
/// allowed; otherwise the same 404 as a path that does not exist.
pub fn page(app: &App, client: IpAddr) -> Result<Response, ApiError> {
    match &app.metrics_allow {
        Some(allowed) if allowed.iter().any(|net| net.contains(client)) => {
            let state = app.pool.state();
            let pool = Pool { size: app.pool.max_size(), open: state.connections, idle: state.idle_connections };
            Ok(Response::from_data("text/plain; version=0.0.4; charset=utf-8", app.metrics.render(&pool)))
        }
        _ => Err(ApiError::NotFound("Not found")),
    }
}

/// The route templates requests are counted under; `other` is every path that is not routed.
pub const ROUTES: [&str; 13] = [
    "/health",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/api/tasks",
    "/api/tasks/reminders",
    "/api/tasks/{id}",
    "/api/tasks/{id}/complete",
    "/api/{user_id}/tasks",
    "/api/{user_id}/tasks/reminders",
    "/api/{user_id}/tasks/{id}",
    "/api/{user_id}/tasks/{id}/complete",
    "other",
];
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Latency bucket bounds, in seconds.
const BOUNDS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// The statuses the transport answers by itself, before any handler.
const REFUSALS: [u16; 5] = [400, 431, 501, 503, 505];
const KINDS: [AuthError; 11] = [
    AuthError::Missing,
    AuthError::Malformed,
    AuthError::TooLong,
    AuthError::UnsupportedHeader,
    AuthError::BadSignature,
    AuthError::UnknownKey,
    AuthError::Expired,
    AuthError::NotYetValid,
    AuthError::WrongIssuer,
    AuthError::WrongAudience,
    AuthError::BadClaims,
];

type Counters<const N: usize> = [AtomicU64; N];

fn counters<const N: usize>() -> Counters<N> {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// One server's metrics, shared by its connection layer and its handlers.
pub struct Metrics {
    requests: [[Counters<{ CLASSES.len() }>; METHODS.len()]; ROUTES.len()],
    /// Per route: a count per latency bucket (not cumulative: summed when written), the
    /// overflow, and the sum in microseconds.
    latency: [(Counters<{ BOUNDS.len() + 1 }>, AtomicU64); ROUTES.len()],
    pub open_connections: AtomicUsize,
    refused: Counters<{ REFUSALS.len() }>,
    rate_limited: AtomicU64,
    rejections: Counters<{ KINDS.len() }>,
    /// Requests waiting for a pooled database connection now.
    pub pool_waiting: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| counters())),
            latency: std::array::from_fn(|_| (counters(), AtomicU64::new(0))),
            open_connections: AtomicUsize::new(0),
            refused: counters(),
            rate_limited: AtomicU64::new(0),
            rejections: counters(),
            pool_waiting: AtomicUsize::new(0),
        }
    }
}

/// The database pool as r2d2 reports it, read when `/metrics` is asked.
pub struct Pool {
    pub size: u32,
    pub open: u32,
    pub idle: u32,
}

impl Metrics {
    /// One answered request; `route` is one of `ROUTES` (else it counts as `other`).
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let route = ROUTES.iter().position(|r| *r == route).unwrap_or(ROUTES.len() - 1);
        let method = METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1);
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.requests[route][method][class].fetch_add(1, Relaxed);
        let (buckets, sum) = &self.latency[route];
        let seconds = took.as_secs_f64();
        let bucket = BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(BOUNDS.len());
        buckets[bucket].fetch_add(1, Relaxed);
        sum.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn refused(&self, status: u16) {
        if let Some(at) = REFUSALS.iter().position(|s| *s == status) {
            self.refused[at].fetch_add(1, Relaxed);
        }
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    pub fn token_rejected(&self, kind: AuthError) {
        if let Some(at) = KINDS.iter().position(|k| *k == kind) {
            self.rejections[at].fetch_add(1, Relaxed);
        }
    }

    /// The text format, version 0.0.4.
    pub fn render(&self, pool: &Pool) -> String {
        let mut out = String::with_capacity(8 * 1024);
        family(&mut out, "build_info", "gauge", "The running build: always 1, with its version as a label.");
        let _ = writeln!(out, "todo_api_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        family(&mut out, "requests_total", "counter", "Requests answered, by route template, method and status class.");
        for (route, methods) in ROUTES.iter().zip(&self.requests) {
            for (method, classes) in METHODS.iter().zip(methods) {
                for (class, count) in CLASSES.iter().zip(classes) {
                    match count.load(Relaxed) {
                        0 => {}
                        n => line(&mut out, "requests_total", &[route, method, class], n),
                    }
                }
            }
        }

        family(
            &mut out,
            "request_duration_seconds",
            "histogram",
            "Time from a request's dispatch to its response, by route template.",
        );
        for (route, (buckets, sum)) in ROUTES.iter().zip(&self.latency) {
            let counts: Vec<u64> = buckets.iter().map(|b| b.load(Relaxed)).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bound, count) in BOUNDS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]).zip(&counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "todo_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let seconds = sum.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "todo_api_request_duration_seconds_sum{{route=\"{route}\"}} {seconds}");
            let _ = writeln!(out, "todo_api_request_duration_seconds_count{{route=\"{route}\"}} {total}");
        }

        family(&mut out, "open_connections", "gauge", "Client connections open now.");
        let _ = writeln!(out, "todo_api_open_connections {}", self.open_connections.load(Relaxed));

        family(
            &mut out,
            "transport_refusals_total",
            "counter",
            "Requests the connection layer answered itself, by status.",
        );
        for (status, count) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(out, "todo_api_transport_refusals_total{{status=\"{status}\"}} {}", count.load(Relaxed));
        }

        family(&mut out, "db_pool_size", "gauge", "Database connections the pool may hold (DB_POOL_SIZE).");
        let _ = writeln!(out, "todo_api_db_pool_size {}", pool.size);
        family(&mut out, "db_pool_connections", "gauge", "Database connections open now, idle or in use.");
        let _ = writeln!(out, "todo_api_db_pool_connections {}", pool.open);
        family(&mut out, "db_pool_idle", "gauge", "Database connections open and idle now.");
        let _ = writeln!(out, "todo_api_db_pool_idle {}", pool.idle);
        family(&mut out, "db_pool_waiting", "gauge", "Requests waiting for a database connection now.");
        let _ = writeln!(out, "todo_api_db_pool_waiting {}", self.pool_waiting.load(Relaxed));

        family(&mut out, "rate_limited_total", "counter", "Requests answered 429 by the rate limits.");
        let _ = writeln!(out, "todo_api_rate_limited_total {}", self.rate_limited.load(Relaxed));

        family(&mut out, "token_rejections_total", "counter", "Requests whose bearer token was rejected, by kind.");
        for (kind, count) in KINDS.iter().zip(&self.rejections) {
            let _ = writeln!(
                out,
                "todo_api_token_rejections_total{{kind=\"{}\"}} {}",
                kind_label(*kind),
                count.load(Relaxed)
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP todo_api_{name} {help}\n# TYPE todo_api_{name} {kind}");
}

fn line(out: &mut String, name: &str, values: &[&str; 3], value: u64) {
    let [route, method, status] = values;
    let _ = writeln!(out, "todo_api_{name}{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {value}");
}

fn kind_label(kind: AuthError) -> &'static str {
    match kind {
        AuthError::Missing => "missing",
        AuthError::Malformed => "malformed",
        AuthError::TooLong => "too_long",
        AuthError::UnsupportedHeader => "unsupported_header",
        AuthError::BadSignature => "bad_signature",
        AuthError::UnknownKey => "unknown_key",
        AuthError::Expired => "expired",
        AuthError::NotYetValid => "not_yet_valid",
        AuthError::WrongIssuer => "wrong_issuer",
        AuthError::WrongAudience => "wrong_audience",
        AuthError::BadClaims => "bad_claims",
    }
}
