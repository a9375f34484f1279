//! `ApiError`: every way a request can fail, and the only place that maps a failure to HTTP.
//!
//! Invariants a reviewer can check in this file alone:
//! - no error status is chosen anywhere else (handlers choose only their success status,
//!   200, 201 or 204, and readiness its 503, whose body is the contract's own shape);
//! - an internal cause (database error, panic) is logged once here and never sent to the client
//!   (token rejections are logged, by kind, in `auth.rs`);
//! - a database error is logged as `db_cause` writes it: names and the message, never the
//!   server's detail, which can hold a failing row (user text);
//! - every error body is JSON with `detail`, `code` and `request_id`.

use rouille::Response;
use serde::Serialize;

use crate::auth::AuthError;
use crate::db::QueryError;

/// One invalid field, as reported in a 422 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub loc: Vec<&'static str>,
    pub msg: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl FieldError {
    pub fn new(loc: Vec<&'static str>, msg: &'static str, kind: &'static str) -> FieldError {
        FieldError { loc, msg, kind }
    }
}

#[derive(Debug)]
pub enum ApiError {
    NotFound(&'static str),
    /// The route exists; the value of its `Allow` header.
    MethodNotAllowed(String),
    Unauthorized(AuthError),
    Forbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidJson,
    Validation(Vec<FieldError>),
    /// Over the rate limit; the whole seconds until a request is allowed again.
    RateLimited(u64),
    /// The database is unreachable or no connection freed up in time. Holds the cause, for the log.
    Unavailable(String),
    /// A bug. Holds the cause, for the log.
    Internal(String),
    /// The transport's refusals of a request it cannot read (the connection closes after them):
    /// a malformed head or body framing, with what was wrong;
    BadRequest(&'static str),
    /// a head over `head::HEAD_LIMIT`;
    HeadersTooLarge,
    /// a transfer coding other than chunked;
    NotImplemented,
    /// an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Serialize)]
struct Body<'a> {
    detail: &'a str,
    code: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    /// The status, the stable `code` and the client-safe `detail`: the one table of them.
    fn parts(&self) -> (u16, &'static str, &'static str) {
        match self {
            ApiError::InvalidJson => (400, "invalid_json", "Request body is not valid JSON"),
            ApiError::BadRequest(what) => (400, "bad_request", what),
            ApiError::Unauthorized(kind) => (401, "unauthorized", kind.reason()),
            ApiError::Forbidden => (403, "forbidden", "The path's user is not the authenticated user"),
            ApiError::NotFound(what) => (404, "not_found", what),
            ApiError::MethodNotAllowed(_) => (405, "method_not_allowed", "Method not allowed"),
            ApiError::PayloadTooLarge => (413, "payload_too_large", "Request body is larger than 65536 bytes"),
            ApiError::UnsupportedMediaType => (415, "unsupported_media_type", "Content-Type must be application/json"),
            ApiError::Validation(_) => (422, "validation_error", "Validation failed"),
            ApiError::RateLimited(_) => (429, "rate_limited", "Too many requests"),
            ApiError::HeadersTooLarge => {
                (431, "headers_too_large", "Request line and headers are larger than 16384 bytes")
            }
            ApiError::Internal(_) => (500, "internal_error", "Internal server error"),
            ApiError::NotImplemented => (501, "not_implemented", "Transfer-Encoding other than chunked"),
            ApiError::Unavailable(_) => (503, "unavailable", "Service temporarily unavailable"),
            ApiError::VersionNotSupported => {
                (505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are supported")
            }
        }
    }

    pub fn status(&self) -> u16 {
        self.parts().0
    }

    /// The response for this error. Causes are logged here, once, and kept out of the body.
    pub fn to_response(&self, request_id: &str) -> Response {
        match self {
            ApiError::Internal(cause) => {
                log::error!("request {request_id}: internal error: {cause}")
            }
            ApiError::Unavailable(cause) => {
                log::warn!("request {request_id}: unavailable: {cause}")
            }
            ApiError::Unauthorized(kind) => {
                log::debug!("request {request_id}: token rejected: {kind:?}")
            }
            ApiError::BadRequest(_)
            | ApiError::HeadersTooLarge
            | ApiError::NotImplemented
            | ApiError::VersionNotSupported => log::warn!("request {request_id} refused: {}", self.parts().2),
            _ => {}
        }
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let (status, code, detail) = self.parts();
        let json = serde_json::to_vec(&Body { detail, code, request_id, errors }).unwrap_or_default();
        let mut response = Response::from_data("application/json", json).with_status_code(status);
        match self {
            ApiError::MethodNotAllowed(allow) => response = response.with_unique_header("Allow", allow.clone()),
            ApiError::Unauthorized(kind) if kind.token_presented() => {
                response = response.with_unique_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
            }
            ApiError::Unauthorized(_) => response = response.with_unique_header("WWW-Authenticate", "Bearer"),
            ApiError::Unavailable(_) => response = response.with_unique_header("Retry-After", RETRY_AFTER_SECONDS),
            ApiError::RateLimited(wait) => response = response.with_unique_header("Retry-After", wait.to_string()),
            _ => {}
        }
        response
    }
}

impl From<r2d2::Error> for ApiError {
    /// r2d2's only error is "no connection within the checkout timeout".
    fn from(e: r2d2::Error) -> ApiError {
        ApiError::Unavailable(format!("database pool: {e}"))
    }
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> ApiError {
        // SQLSTATE classes 08 (connection), 53 (resources) and 57P (shutdown), a statement over
        // `statement_timeout` (57014) and a lock not had in time (55P03) mean the database, not
        // the request, is at fault; so do errors with no SQLSTATE (closed socket, I/O).
        let unavailable = match e.code() {
            Some(code) => ["08", "53", "57P", "57014", "55P03"].iter().any(|prefix| code.code().starts_with(prefix)),
            None => true,
        };
        if unavailable {
            ApiError::Unavailable(format!("database: {}", db_cause(&e)))
        } else {
            ApiError::Internal(format!("database: {}", db_cause(&e)))
        }
    }
}

/// A database error as it may be logged: severity, SQLSTATE, message and the names of the
/// schema, table, column, type and constraint involved; never the server's `DETAIL`, `HINT` or
/// `WHERE`, which `DbError`'s own `Display` includes and which for a check or unique violation
/// is the failing row or key ("Failing row contains (...)"): user text. (`postgres::Error`'s
/// `Display` is only "db error".) An error that did not come from the server (I/O, TLS, a
/// closed connection) is its own text and its cause's.
pub fn db_cause(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
    };
    let mut cause = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    let names = [
        ("schema", db.schema()),
        ("table", db.table()),
        ("column", db.column()),
        ("type", db.datatype()),
        ("constraint", db.constraint()),
    ];
    let names: Vec<String> =
        names.iter().filter_map(|(what, name)| name.map(|name| format!("{what} {name}"))).collect();
    if !names.is_empty() {
        cause.push_str(&format!(" ({})", names.join(", ")));
    }
    cause
}

impl From<QueryError> for ApiError {
    /// A statement given up on after its deadline (the database froze) is a 503 like the rest.
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::Db(e) => e.into(),
            QueryError::Deadline(_) | QueryError::Runtime(_) => ApiError::Unavailable(format!("database: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body(response: Response) -> serde_json::Value {
        let (mut reader, _) = response.data.into_reader_and_size();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_500_never_carries_its_cause() {
        let error = ApiError::Internal("relation \"secret_table\" password=hunter2".into());
        let response = error.to_response("rid");
        assert_eq!(response.status_code, 500);
        let text = body(response).to_string();
        assert!(!text.contains("secret_table") && !text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_503_carries_retry_after_and_no_cause() {
        let response = ApiError::Unavailable("connection refused to 10.0.0.1".into()).to_response("rid");
        assert_eq!(response.status_code, 503);
        assert!(response.headers.iter().any(|(k, v)| k == "Retry-After" && v == RETRY_AFTER_SECONDS));
        let json = body(response);
        assert_eq!(json["code"], "unavailable");
        assert!(!json.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn every_error_body_has_detail_code_and_request_id() {
        let json = body(ApiError::NotFound("Task not found").to_response("abc"));
        assert_eq!(json, serde_json::json!({"detail": "Task not found", "code": "not_found", "request_id": "abc"}));
    }

    #[test]
    fn validation_errors_list_each_field() {
        let errors = vec![
            FieldError::new(vec!["body", "title"], "must be 1 to 200 characters", "string_length"),
            FieldError::new(vec!["body", "completed"], "must be a boolean", "bool_type"),
        ];
        let json = body(ApiError::Validation(errors).to_response("r"));
        assert_eq!(json["errors"][0]["loc"], serde_json::json!(["body", "title"]));
        assert_eq!(json["errors"][1]["type"], "bool_type");
    }
}
