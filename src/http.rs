//! The request pipeline: route table, authentication gate, body reader, and the headers every
//! response carries (request id, nosniff, no-store, CORS).
//!
//! Invariants a reviewer can check in this file alone:
//! - checks run in the contract's order: route (404/405), token (401), path user (403),
//!   task id (404), body (413/415/400/422), then the database;
//! - no `/api/...` handler runs without a `UserId` from the verifier;
//! - routing looks at the raw path, so `%2F` is never a separator;
//! - a body is never read past 64 KiB + 1 byte;
//! - a panic in a handler becomes a JSON 500 and the worker lives on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rouille::{Request, Response};
use serde::Serialize;

use crate::App;
use crate::config::Cors;
use crate::error::{ApiError, allow_header};
use crate::{health, tasks};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 65_536;

/// The request headers the API reads, announced to CORS preflights.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Request-Id";
const EXPOSE_HEADERS: &str = "X-Total-Count, Link, Location, X-Request-Id";

/// What a path names, before the method is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    OpenApi,
    Tasks,
    Task,
    Complete,
}

impl Endpoint {
    /// The methods each endpoint serves (`OPTIONS` is answered for all of them).
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Endpoint::Health | Endpoint::Ready | Endpoint::OpenApi => &["GET"],
            Endpoint::Tasks => &["GET", "POST"],
            Endpoint::Task => &["GET", "PUT", "PATCH", "DELETE"],
            Endpoint::Complete => &["PATCH"],
        }
    }
}

/// A resolved path: the endpoint and the raw (still percent-encoded) path parameters.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub endpoint: Endpoint,
    /// `{user_id}` of the `/api/{user_id}/tasks...` family, as sent.
    pub path_user: Option<&'a str>,
    /// `{id}`, as sent; checked after authentication.
    pub id: Option<&'a str>,
    /// The path without its query string and trailing slash (for `Location` and `Link`).
    pub path: &'a str,
}

impl Route<'_> {
    /// The collection path of this route's family: `/api/tasks` or `/api/{user_id}/tasks`.
    pub fn collection(&self) -> String {
        match self.path_user {
            Some(user) => format!("/api/{user}/tasks"),
            None => "/api/tasks".to_owned(),
        }
    }
}

/// The route table. `/api/tasks/...` always means the token family.
pub fn resolve(path: &str) -> Option<Route<'_>> {
    let trimmed = match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    };
    let segments: Vec<&str> = trimmed.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (endpoint, path_user, id) = match segments.as_slice() {
        ["health"] => (Endpoint::Health, None, None),
        ["health", "ready"] => (Endpoint::Ready, None, None),
        ["openapi.json"] => (Endpoint::OpenApi, None, None),
        ["api", "tasks"] => (Endpoint::Tasks, None, None),
        ["api", "tasks", id] => (Endpoint::Task, None, Some(*id)),
        ["api", "tasks", id, "complete"] => (Endpoint::Complete, None, Some(*id)),
        ["api", "tasks", ..] => return None,
        ["api", user, "tasks"] => (Endpoint::Tasks, Some(*user), None),
        ["api", user, "tasks", id] => (Endpoint::Task, Some(*user), Some(*id)),
        ["api", user, "tasks", id, "complete"] => (Endpoint::Complete, Some(*user), Some(*id)),
        _ => return None,
    };
    Some(Route { endpoint, path_user, id, path: trimmed })
}

/// What runs a routed request; `dispatch` in production (tests may wrap it).
pub type Dispatch = fn(&App, &Request, &Route) -> Result<Response, ApiError>;

/// Public routes, then the authentication gate, then the task routes.
pub fn dispatch(app: &App, request: &Request, route: &Route) -> Result<Response, ApiError> {
    match route.endpoint {
        Endpoint::Health => return Ok(json(200, &health::Status::ok())),
        Endpoint::Ready => return health::ready(app),
        Endpoint::OpenApi => return Ok(Response::from_data("application/json", crate::OPENAPI)),
        Endpoint::Tasks | Endpoint::Task | Endpoint::Complete => {}
    }
    let user = app.verifier.authenticate(request.header("Authorization"), now()).map_err(ApiError::Unauthorized)?;
    if let Some(raw) = route.path_user
        && percent_decode(raw).as_deref() != Some(user.as_str().as_bytes())
    {
        return Err(ApiError::Forbidden);
    }
    let id = route.id.map(task_id).transpose()?;
    match (request.method(), route.endpoint, id) {
        ("GET", Endpoint::Tasks, None) => tasks::list(app, &user, request, route),
        ("POST", Endpoint::Tasks, None) => tasks::create(app, &user, request, route),
        ("GET", Endpoint::Task, Some(id)) => tasks::get(app, &user, id),
        ("PUT", Endpoint::Task, Some(id)) => tasks::replace(app, &user, request, id),
        ("PATCH", Endpoint::Task, Some(id)) => tasks::update(app, &user, request, id),
        ("DELETE", Endpoint::Task, Some(id)) => tasks::delete(app, &user, id),
        ("PATCH", Endpoint::Complete, Some(id)) => tasks::complete(app, &user, request, id),
        _ => Err(ApiError::Internal(format!("route table has no handler for {:?}", route.endpoint))),
    }
}

/// Every request goes through here: request id, routing, method checks, the handler (with
/// panics caught), then the headers every response carries and one access-log line.
pub fn handle(app: &App, request: &Request, dispatch: Dispatch) -> Response {
    let started = Instant::now();
    let request_id = request_id(request);
    let path = request.raw_url().split('?').next().unwrap_or_default();
    let method = request.method();
    let route = resolve(path);
    let result = match route {
        None => Err(ApiError::NotFound("Not found")),
        Some(route) if method == "OPTIONS" => {
            Ok(Response::empty_204().with_unique_header("Allow", allow_header(route.endpoint.methods())))
        }
        Some(route) if !route.endpoint.methods().contains(&method) => {
            Err(ApiError::MethodNotAllowed(route.endpoint.methods()))
        }
        Some(route) => catch_unwind(AssertUnwindSafe(|| dispatch(app, request, &route)))
            .unwrap_or_else(|_| Err(ApiError::Internal("handler panicked".to_owned()))),
    };
    let mut response = result.unwrap_or_else(|error| error.to_response(&request_id));
    if method == "HEAD" {
        response.data = rouille::ResponseBody::empty();
    }
    response = response
        .with_unique_header("X-Request-Id", request_id.clone())
        .with_unique_header("X-Content-Type-Options", "nosniff");
    if path.starts_with("/api/") {
        response = response.with_unique_header("Cache-Control", "no-store");
    }
    response = cors(&app.cors, request, route.map(|r| r.endpoint), response);
    log::info!(
        target: "access",
        "{request_id} {method} {path} {} {:.1}ms",
        response.status_code,
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

/// CORS as the contract says: exact origins (or `*`), preflights answered without a token.
fn cors(cors: &Cors, request: &Request, endpoint: Option<Endpoint>, mut response: Response) -> Response {
    let origin = request.header("Origin");
    let allowed = match (cors, origin) {
        (Cors::Any, Some(_)) => Some("*"),
        (Cors::Origins(list), Some(origin)) if list.iter().any(|o| o == origin) => Some(origin),
        _ => None,
    };
    let is_api = request.raw_url().starts_with("/api/");
    if matches!(cors, Cors::Origins(_)) && (allowed.is_some() || is_api) {
        response = response.with_additional_header("Vary", "Origin");
    }
    let Some(allowed) = allowed else {
        return response;
    };
    response = response
        .with_unique_header("Access-Control-Allow-Origin", allowed.to_owned())
        .with_unique_header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    let preflight = request.method() == "OPTIONS" && request.header("Access-Control-Request-Method").is_some();
    if let (true, Some(endpoint)) = (preflight, endpoint) {
        response = response
            .with_unique_header("Access-Control-Allow-Methods", endpoint.methods().join(", "))
            .with_unique_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .with_unique_header("Access-Control-Max-Age", "600");
    }
    response
}

/// The caller's `X-Request-Id` if it is 1 to 128 of `[A-Za-z0-9._-]`, else a new one.
fn request_id(request: &Request) -> String {
    let valid = |id: &str| {
        (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    match request.header("X-Request-Id") {
        Some(id) if valid(id) => id.to_owned(),
        _ => new_request_id(),
    }
}

/// A fresh request id: 16 hex digits.
pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS; hashing a counter gives unique, unguessable ids.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// A task id: `[1-9][0-9]*` within `i64`; anything else is a 404, as if no such task existed.
fn task_id(raw: &str) -> Result<i64, ApiError> {
    let plain = raw.starts_with(|c: char| ('1'..='9').contains(&c)) && raw.bytes().all(|b| b.is_ascii_digit());
    match plain.then(|| raw.parse::<i64>()) {
        Some(Ok(id)) => Ok(id),
        _ => Err(ApiError::NotFound("Task not found")),
    }
}

/// Decodes `%XX` escapes (and nothing else); `None` if an escape is malformed.
pub fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Seconds since the Unix epoch, for token checks.
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::from_data("application/json", body).with_status_code(status),
        Err(e) => ApiError::Internal(format!("serialising a response: {e}")).to_response("-"),
    }
}

/// Reads a JSON body: `Ok(None)` when there are no body bytes at all.
/// Checks, in order: size (413), then emptiness, then `Content-Type` (415), then syntax (400).
pub fn read_json(request: &Request) -> Result<Option<serde_json::Value>, ApiError> {
    let declared = request.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = Vec::new();
    if let Some(data) = request.data() {
        data.take(BODY_LIMIT as u64 + 1).read_to_end(&mut body).map_err(|_| ApiError::InvalidJson)?;
    }
    if body.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    if body.is_empty() {
        return Ok(None);
    }
    if !request.header("Content-Type").is_some_and(is_json_media_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&body).map(Some).map_err(|_| ApiError::InvalidJson)
}

/// `application/json` or any `type/subtype+json`, parameters allowed.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, subtype)) => {
            !kind.is_empty() && (essence == "application/json" || (subtype.len() > 5 && subtype.ends_with("+json")))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_reads_the_raw_path() {
        type Expected<'a> = Option<(Endpoint, Option<&'a str>, Option<&'a str>)>;
        let cases: &[(&str, Expected)] = &[
            ("/health", Some((Endpoint::Health, None, None))),
            ("/health/", Some((Endpoint::Health, None, None))),
            ("/health//", None),
            ("/health/ready", Some((Endpoint::Ready, None, None))),
            ("/openapi.json", Some((Endpoint::OpenApi, None, None))),
            ("/api/tasks", Some((Endpoint::Tasks, None, None))),
            ("/api/tasks/", Some((Endpoint::Tasks, None, None))),
            ("/api/tasks/7", Some((Endpoint::Task, None, Some("7")))),
            ("/api/tasks/tasks", Some((Endpoint::Task, None, Some("tasks")))),
            ("/api/tasks/7/complete", Some((Endpoint::Complete, None, Some("7")))),
            ("/api/tasks/7/other", None),
            ("/api/tasks/tasks/7", None),
            ("/api/u1/tasks", Some((Endpoint::Tasks, Some("u1"), None))),
            ("/api/u%2F1/tasks/9", Some((Endpoint::Task, Some("u%2F1"), Some("9")))),
            ("/api/u1/tasks/9/complete/", Some((Endpoint::Complete, Some("u1"), Some("9")))),
            ("/api/%74asks", None),
            ("/api//tasks", None),
            ("/api", None),
            ("/", None),
            ("", None),
            ("http://host/api/tasks", None),
        ];
        for (path, expected) in cases {
            let got = resolve(path).map(|r| (r.endpoint, r.path_user, r.id));
            assert_eq!(got, *expected, "path {path:?}");
        }
    }

    /// The OpenAPI document and the route table describe the same routes and methods.
    #[test]
    fn the_openapi_document_matches_the_route_table() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = Vec::new();
        for (template, operations) in doc["paths"].as_object().unwrap() {
            let path = template.replace("{id}", "1").replace("{user_id}", "u1");
            let route = resolve(&path).unwrap_or_else(|| panic!("{template} is documented but not routed"));
            let mut methods: Vec<String> = operations
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(|m| m.to_uppercase())
                .collect();
            let mut served: Vec<String> = route.endpoint.methods().iter().map(|m| m.to_string()).collect();
            methods.sort();
            served.sort();
            assert_eq!(methods, served, "{template}");
            documented.push((route.endpoint, route.path_user.is_some()));
        }
        use Endpoint::*;
        let public = [Health, Ready, OpenApi].map(|e| (e, false));
        let families = [Tasks, Task, Complete].into_iter().flat_map(|e| [(e, false), (e, true)]);
        for endpoint in public.into_iter().chain(families) {
            // A new endpoint must be added to the lists above, and then to the document.
            match endpoint.0 {
                Health | Ready | OpenApi | Tasks | Task | Complete => {}
            }
            assert!(documented.contains(&endpoint), "{endpoint:?} is routed but not documented");
        }
        assert_eq!(documented.len(), 9);
    }

    #[test]
    fn task_ids_are_plain_positive_int64() {
        for ok in ["1", "42", "9223372036854775807"] {
            assert!(task_id(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "01", "+1", "-1", "1e3", "%31", "9223372036854775808", "", " 1", "1 ", "١"] {
            assert!(task_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_media_types() {
        for ok in
            ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"]
        {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in ["text/plain", "application/jsonx", "json", "application/+json", "", "multipart/form-data"] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), Some(b"a/b".to_vec()));
        assert_eq!(percent_decode("%e2%82%ac"), Some("€".as_bytes().to_vec()));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("a%+1"), None);
        assert_eq!(percent_decode("a+b"), Some(b"a+b".to_vec()));
    }
}
