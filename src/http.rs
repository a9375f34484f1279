//! The request pipeline: the route table, the authentication gate, the rate limits, and the
//! headers every response carries (request id, nosniff, no-store, CORS); each request is counted
//! in the metrics here.
//!
//! Invariants a reviewer can check in this file alone:
//! - checks run in the contract's order: route (404/405), rate limit (429), token (401), path
//!   user (403), task id (404), body (413/415/400/422), then the database;
//! - the token is verified once, before the rate limit, which counts a request against its user
//!   when the token is valid and against its client address otherwise; the public routes are
//!   never limited;
//! - no `/api/...` handler runs without a `UserId` from the verifier;
//! - routing looks at the raw path, so `%2F` is never a separator;
//! - each path's actions are named in one table (`resolve`) and each action has its handler in
//!   one exhaustive `match` (`dispatch`): an action without a handler does not compile;
//! - a panic in a handler becomes a JSON 500 and the connection lives on.

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rouille::{Request, Response};

use crate::App;
use crate::auth::{AuthError, UserId};
use crate::config::Cors;
use crate::error::ApiError;
use crate::limits::{Key, Verdict, client_address};
use crate::wire::{json, percent_decode, request_id};
use crate::{health, metrics, tasks};

/// The request headers the API reads, announced to CORS preflights.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Request-Id";
const EXPOSE_HEADERS: &str = "X-Total-Count, Link, Location, X-Request-Id, RateLimit, RateLimit-Policy, Retry-After";

/// What a request asks for, once its path and method are known: one per handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Health,
    Ready,
    OpenApi,
    Metrics,
    List,
    Create,
    Get,
    Replace,
    Update,
    Delete,
    Complete,
    Reminders,
}

impl Action {
    pub fn method(self) -> &'static str {
        match self {
            Action::Health
            | Action::Ready
            | Action::OpenApi
            | Action::Metrics
            | Action::List
            | Action::Get
            | Action::Reminders => "GET",
            Action::Create => "POST",
            Action::Replace => "PUT",
            Action::Update | Action::Complete => "PATCH",
            Action::Delete => "DELETE",
        }
    }

    /// Whether the action needs a token, and so counts against a rate limit.
    pub fn private(self) -> bool {
        !matches!(self, Action::Health | Action::Ready | Action::OpenApi | Action::Metrics)
    }
}

/// What the pipeline learnt of a private action's token: the user, or why there is none.
pub type Token = Result<UserId, AuthError>;

/// A resolved path: its actions and its raw (still percent-encoded) parameters.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub actions: &'static [Action],
    /// `{user_id}` of the `/api/{user_id}/tasks...` family, as sent.
    pub path_user: Option<&'a str>,
    /// `{id}`, as sent; checked after authentication.
    pub id: Option<&'a str>,
    /// The path without its query string and trailing slash (for `Location` and `Link`).
    pub path: &'a str,
    /// The path as the metrics count it, one of `metrics::ROUTES`.
    pub template: &'static str,
}

impl Route<'_> {
    /// The collection path of this route's family: `/api/tasks` or `/api/{user_id}/tasks`.
    pub fn collection(&self) -> String {
        match self.path_user {
            Some(user) => format!("/api/{user}/tasks"),
            None => "/api/tasks".to_owned(),
        }
    }

    /// The route's methods, comma-separated.
    pub fn methods(&self) -> String {
        self.actions.iter().map(|a| a.method()).collect::<Vec<_>>().join(", ")
    }
}

/// The route table. `/api/tasks/...` always means the token family.
pub fn resolve(path: &str) -> Option<Route<'_>> {
    use Action::*;
    const TASKS: &[Action] = &[List, Create];
    const TASK: &[Action] = &[Get, Replace, Update, Delete];
    let trimmed = match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    };
    let segments: Vec<&str> = trimmed.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (actions, path_user, id, template): (&'static [Action], _, _, _) = match segments.as_slice() {
        ["health"] => (&[Health], None, None, "/health"),
        ["health", "ready"] => (&[Ready], None, None, "/health/ready"),
        ["metrics"] => (&[Metrics], None, None, "/metrics"),
        ["openapi.json"] => (&[OpenApi], None, None, "/openapi.json"),
        ["api", "tasks"] => (TASKS, None, None, "/api/tasks"),
        ["api", "tasks", "reminders"] => (&[Reminders], None, None, "/api/tasks/reminders"),
        ["api", "tasks", id] => (TASK, None, Some(*id), "/api/tasks/{id}"),
        ["api", "tasks", id, "complete"] => (&[Complete], None, Some(*id), "/api/tasks/{id}/complete"),
        ["api", "tasks", ..] => return None,
        ["api", user, "tasks"] => (TASKS, Some(*user), None, "/api/{user_id}/tasks"),
        ["api", user, "tasks", "reminders"] => (&[Reminders], Some(*user), None, "/api/{user_id}/tasks/reminders"),
        ["api", user, "tasks", id] => (TASK, Some(*user), Some(*id), "/api/{user_id}/tasks/{id}"),
        ["api", user, "tasks", id, "complete"] => {
            (&[Complete], Some(*user), Some(*id), "/api/{user_id}/tasks/{id}/complete")
        }
        _ => return None,
    };
    Some(Route { actions, path_user, id, path: trimmed, template })
}

/// What runs a routed request; `dispatch` in production (tests may wrap it). The token is
/// `Some` for private actions.
pub type Dispatch = fn(&App, &Request, &Route, Action, Option<Token>) -> Result<Response, ApiError>;

/// Every action's handler. The task actions check the token (401), then the path's user (403),
/// then the id (404): a call's arguments are evaluated left to right, each `?` returning early.
pub fn dispatch(
    app: &App,
    request: &Request,
    route: &Route,
    action: Action,
    token: Option<Token>,
) -> Result<Response, ApiError> {
    let user = || authorize(token, route);
    let id = || task_id(route.id.unwrap_or_default());
    match action {
        Action::Health => Ok(json(200, &health::Status::ok())),
        Action::Ready => health::ready(app),
        Action::OpenApi => Ok(Response::from_data("application/json", crate::OPENAPI)),
        Action::Metrics => metrics::page(app, client(app, request)),
        Action::List => tasks::list(app, &user()?, request, route.path),
        Action::Create => tasks::create(app, &user()?, request, &route.collection()),
        Action::Get => tasks::get(app, &user()?, id()?),
        Action::Replace => tasks::replace(app, &user()?, request, id()?, &route.collection()),
        Action::Update => tasks::update(app, &user()?, request, id()?, &route.collection()),
        Action::Delete => tasks::delete(app, &user()?, id()?),
        Action::Complete => tasks::complete(app, &user()?, request, id()?, &route.collection()),
        Action::Reminders => tasks::reminders(app, &user()?, request, route.path),
    }
}

/// The token's user, who must be the path's user in the `/api/{user_id}/...` family.
fn authorize(token: Option<Token>, route: &Route) -> Result<UserId, ApiError> {
    let user = token.unwrap_or(Err(AuthError::Missing)).map_err(ApiError::Unauthorized)?;
    match route.path_user {
        Some(raw) if percent_decode(raw).as_deref() != Some(user.as_str().as_bytes()) => Err(ApiError::Forbidden),
        _ => Ok(user),
    }
}

/// Every request goes through here: request id, routing, method checks, token and rate limit,
/// the handler (with panics caught), then the headers every response carries, the metrics and
/// one access-log line.
pub fn handle(app: &App, request: &Request, dispatch: Dispatch) -> Response {
    let started = Instant::now();
    let request_id = request_id(request.header("X-Request-Id"));
    let path = request.raw_url().split('?').next().unwrap_or_default();
    let method = request.method();
    let route = resolve(path);
    let mut limit = None;
    // `Allow` lists the route's methods and `OPTIONS`, which every route answers.
    let result = match route {
        None => Err(ApiError::NotFound("Not found")),
        Some(route) if method == "OPTIONS" => {
            Ok(Response::empty_204().with_unique_header("Allow", format!("{}, OPTIONS", route.methods())))
        }
        Some(route) => match route.actions.iter().find(|action| action.method() == method) {
            None => Err(ApiError::MethodNotAllowed(format!("{}, OPTIONS", route.methods()))),
            Some(&action) => {
                let token = action.private().then(|| verify(app, request));
                limit = token.as_ref().and_then(|token| rate_limit(app, request, token));
                match limit {
                    Some(verdict) if !verdict.allowed => Err(ApiError::RateLimited(verdict.wait)),
                    _ => catch_unwind(AssertUnwindSafe(|| dispatch(app, request, &route, action, token)))
                        .unwrap_or_else(|_| Err(ApiError::Internal("handler panicked".to_owned()))),
                }
            }
        },
    };
    let mut response = result.unwrap_or_else(|error| error.to_response(&request_id));
    if let (Some(limiter), Some(verdict)) = (&app.limiter, limit) {
        response = response
            .with_unique_header("RateLimit-Policy", format!("\"default\";q={};w=60", limiter.per_minute))
            .with_unique_header("RateLimit", format!("\"default\";r={};t={}", verdict.remaining, verdict.wait));
    }
    response = response
        .with_unique_header("X-Request-Id", request_id.clone())
        .with_unique_header("X-Content-Type-Options", "nosniff");
    if path.starts_with("/api/") {
        response = response.with_unique_header("Cache-Control", "no-store");
    }
    response = cors(&app.cors, request, route.as_ref(), response);
    let took = started.elapsed();
    app.metrics.request(route.map_or("other", |route| route.template), method, response.status_code, took);
    log::info!(target: "access", "{request_id} {method} {path} {} {:.1}ms", response.status_code, took.as_secs_f64() * 1000.0);
    response
}

/// The request's token, verified; rejections are counted by kind.
fn verify(app: &App, request: &Request) -> Token {
    let token = app.verifier.authenticate(request.header("Authorization"), now());
    if let Err(kind) = token {
        app.metrics.token_rejected(kind);
    }
    token
}

/// Takes a token from the bucket of the request's user, or of its client address when it has
/// no valid token; `None` when limits are off.
fn rate_limit(app: &App, request: &Request, token: &Token) -> Option<Verdict> {
    let limiter = app.limiter.as_ref()?;
    let key = match token {
        Ok(user) => Key::User(user.as_str()),
        Err(_) => Key::Address(client(app, request)),
    };
    let verdict = limiter.check(key, Instant::now());
    if !verdict.allowed {
        app.metrics.rate_limited();
    }
    Some(verdict)
}

/// The client's address: the peer, or what trusted proxies say it is (`limits::client_address`).
fn client(app: &App, request: &Request) -> IpAddr {
    let forwarded = request.headers().filter(|(name, _)| name.eq_ignore_ascii_case("X-Forwarded-For"));
    client_address(request.remote_addr().ip(), forwarded.map(|(_, value)| value), &app.trusted_proxies)
}

/// CORS as the contract says: exact origins (or `*`), preflights answered without a token.
fn cors(cors: &Cors, request: &Request, route: Option<&Route>, mut response: Response) -> Response {
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
    if let (true, Some(route)) = (preflight, route) {
        response = response
            .with_unique_header("Access-Control-Allow-Methods", route.methods())
            .with_unique_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .with_unique_header("Access-Control-Max-Age", "600");
    }
    response
}

/// A task id: `[1-9][0-9]*` within `i64`; anything else is a 404, as if no such task existed.
fn task_id(raw: &str) -> Result<i64, ApiError> {
    let plain = raw.starts_with(|c: char| ('1'..='9').contains(&c)) && raw.bytes().all(|b| b.is_ascii_digit());
    match plain.then(|| raw.parse::<i64>()) {
        Some(Ok(id)) => Ok(id),
        _ => Err(ApiError::NotFound("Task not found")),
    }
}

/// Seconds since the Unix epoch, for token checks.
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_reads_the_raw_path() {
        use Action::*;
        type Expected<'a> = Option<(&'a [Action], Option<&'a str>, Option<&'a str>)>;
        let (tasks, task): (&[Action], &[Action]) = (&[List, Create], &[Get, Replace, Update, Delete]);
        let cases: &[(&str, Expected)] = &[
            ("/health", Some((&[Health], None, None))),
            ("/health/", Some((&[Health], None, None))),
            ("/health//", None),
            ("/health/ready", Some((&[Ready], None, None))),
            ("/openapi.json", Some((&[OpenApi], None, None))),
            ("/metrics", Some((&[Metrics], None, None))),
            ("/api/tasks", Some((tasks, None, None))),
            ("/api/tasks/", Some((tasks, None, None))),
            ("/api/tasks/7", Some((task, None, Some("7")))),
            ("/api/tasks/tasks", Some((task, None, Some("tasks")))),
            ("/api/tasks/reminders", Some((&[Reminders], None, None))),
            ("/api/tasks/reminders/", Some((&[Reminders], None, None))),
            ("/api/u1/tasks/reminders", Some((&[Reminders], Some("u1"), None))),
            ("/api/tasks/reminders/complete", Some((&[Complete], None, Some("reminders")))),
            ("/api/tasks/7/complete", Some((&[Complete], None, Some("7")))),
            ("/api/tasks/7/other", None),
            ("/api/tasks/tasks/7", None),
            ("/api/u1/tasks", Some((tasks, Some("u1"), None))),
            ("/api/u%2F1/tasks/9", Some((task, Some("u%2F1"), Some("9")))),
            ("/api/u1/tasks/9/complete/", Some((&[Complete], Some("u1"), Some("9")))),
            ("/api/%74asks", None),
            ("/api//tasks", None),
            ("/api", None),
            ("/", None),
            ("", None),
            ("http://host/api/tasks", None),
        ];
        for (path, expected) in cases {
            let route = resolve(path);
            let got = route.map(|r| (r.actions, r.path_user, r.id));
            assert_eq!(got, *expected, "path {path:?}");
            if let Some(route) = route {
                assert!(crate::metrics::ROUTES.contains(&route.template), "{path}: {} is counted", route.template);
                let shape = route
                    .template
                    .replace("{id}", route.id.unwrap_or("-"))
                    .replace("{user_id}", route.path_user.unwrap_or("-"));
                assert_eq!(shape, route.path, "{path}: the template is the path's shape");
            }
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
            let mut served: Vec<String> = route.actions.iter().map(|a| a.method().to_owned()).collect();
            methods.sort();
            served.sort();
            assert_eq!(methods, served, "{template}");
            documented.extend(route.actions.iter().map(|action| (*action, route.path_user.is_some())));
        }
        use Action::*;
        for action in [Health, Ready, OpenApi, Metrics, List, Create, Get, Replace, Update, Delete, Complete, Reminders]
        {
            // A new action must be added to the list above, and then to the document.
            match action {
                Health | Ready | OpenApi | Metrics | List | Create | Get | Replace | Update | Delete | Complete
                | Reminders => {}
            }
            let public = !action.private();
            for family in if public { &[false][..] } else { &[false, true] } {
                assert!(documented.contains(&(action, *family)), "{action:?} ({family}) is routed but not documented");
            }
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), 12);
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
}
