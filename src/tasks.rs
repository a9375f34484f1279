//! Task handlers: parse the input, run one owner-scoped statement, shape the response.
//!
//! Invariants a reviewer can check in this file alone:
//! - every handler takes the caller's `UserId` and passes it to SQL, which does the scoping;
//! - a title or description reaches SQL only as a `Title` / `Description`, made by `parse`;
//! - a task of another user is indistinguishable from a missing one (404);
//! - every invalid field of a body or query is reported, not just the first.

use postgres::Row;
use postgres::types::{ToSql, Type};
use rouille::{Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::App;
use crate::auth::UserId;
use crate::db::{self, Params, Sql};
use crate::error::{ApiError, FieldError};
use crate::wire::{Timestamp, json, percent_decode, read_json};

const NOT_FOUND: ApiError = ApiError::NotFound("Task not found");
const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 1000;
const QUERY_MAX: usize = 1000;
const LIMIT_MAX: i64 = 1000;
const LIMIT_DEFAULT: i64 = 100;

/// A task as stored and as sent, borrowed from its row.
#[derive(Debug, Serialize)]
pub struct Task<'a> {
    pub id: i64,
    pub user_id: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task<'_> {
    /// The one row mapping; every task statement returns these seven columns first.
    fn from_row(row: &Row) -> Result<Task<'_>, postgres::Error> {
        Ok(Task {
            id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            title: row.try_get(2)?,
            description: row.try_get(3)?,
            completed: row.try_get(4)?,
            created_at: Timestamp(row.try_get(5)?),
            updated_at: Timestamp(row.try_get(6)?),
        })
    }
}

/// A title that passed validation: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug)]
pub struct Title(String);

impl Title {
    pub fn parse(value: &Value) -> Result<Title, FieldError> {
        let loc = vec!["body", "title"];
        let Value::String(raw) = value else {
            return Err(FieldError::new(loc, "must be a string", "string_type"));
        };
        let title = raw.trim();
        if title.chars().any(char::is_control) {
            return Err(FieldError::new(loc, "must not contain control characters", "control_character"));
        }
        if !(1..=TITLE_MAX).contains(&title.chars().count()) {
            return Err(FieldError::new(loc, "must be 1 to 200 characters", "string_length"));
        }
        Ok(Title(title.to_owned()))
    }
}

/// A description that passed validation: null, or at most 1000 characters with no control
/// characters but `\n`, `\r` and `\t`. Stored as sent.
#[derive(Debug)]
pub struct Description(Option<String>);

impl Description {
    pub fn parse(value: &Value) -> Result<Description, FieldError> {
        let loc = vec!["body", "description"];
        match value {
            Value::Null => Ok(Description(None)),
            Value::String(text) => {
                free_text(text, DESCRIPTION_MAX).map_err(|(msg, kind)| FieldError::new(loc, msg, kind))?;
                Ok(Description(Some(text.clone())))
            }
            _ => Err(FieldError::new(loc, "must be a string or null", "string_type")),
        }
    }
}

/// The rule for description and `q`: a length bound, and no Cc character but `\n`, `\r`, `\t`.
fn free_text(text: &str, max: usize) -> Result<(), (&'static str, &'static str)> {
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(("must not contain control characters other than \\n, \\r and \\t", "control_character"));
    }
    if text.chars().count() > max {
        return Err((
            if max == DESCRIPTION_MAX { "must be at most 1000 characters" } else { "is too long" },
            "string_length",
        ));
    }
    Ok(())
}

/// The known fields of a body; `None` means absent.
#[derive(Debug, Default)]
pub struct Fields {
    title: Option<Title>,
    description: Option<Description>,
    completed: Option<bool>,
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.completed.is_none()
    }
}

/// Validates a body's known fields (unknown ones are ignored), reporting every bad field.
pub fn fields(body: &Value, title_required: bool) -> Result<Fields, ApiError> {
    let object = as_object(body)?;
    let mut errors = Vec::new();
    let title = match object.get("title") {
        None if title_required => {
            keep(&mut errors, Err::<Title, _>(FieldError::new(vec!["body", "title"], "is required", "missing")))
        }
        None => None,
        Some(value) => keep(&mut errors, Title::parse(value)),
    };
    let description = object.get("description").and_then(|v| keep(&mut errors, Description::parse(v)));
    let completed = object.get("completed").and_then(|v| keep(&mut errors, completed(v)));
    if errors.is_empty() { Ok(Fields { title, description, completed }) } else { Err(ApiError::Validation(errors)) }
}

/// The value of a field that passed, or `None` with its error kept.
fn keep<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

fn completed(value: &Value) -> Result<bool, FieldError> {
    value.as_bool().ok_or_else(|| FieldError::new(vec!["body", "completed"], "must be a boolean", "bool_type"))
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(vec!["body"], "must be a JSON object", "object_type")])
    })
}

/// A body that must be present (POST, PUT, PATCH).
fn required_body(request: &Request) -> Result<Value, ApiError> {
    read_json(request)?.ok_or(ApiError::InvalidJson)
}

/// Runs one statement on one task: its row, or `None` when the caller has no such task.
fn one(app: &App, sql: Sql, params: &Params) -> Result<Option<Row>, ApiError> {
    let mut conn = app.pool.get()?;
    Ok(conn.query(sql, params)?.into_iter().next())
}

/// The task in `row` as the response body.
fn task(status: u16, row: &Row) -> Result<Response, ApiError> {
    Ok(json(status, &Task::from_row(row)?))
}

/// `POST`: a new task; `Location` is its path under `collection`, the request's family.
pub fn create(app: &App, user: &UserId, request: &Request, collection: &str) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, true)?;
    let (Some(Title(title)), description) = (fields.title, fields.description) else {
        return Err(ApiError::Internal("validated create body has no title".to_owned()));
    };
    let description = description.and_then(|Description(d)| d);
    let completed = fields.completed.unwrap_or(false);
    let params: [(&(dyn ToSql + Sync), Type); 4] =
        [(&user.as_str(), Type::TEXT), (&title, Type::TEXT), (&description, Type::TEXT), (&completed, Type::BOOL)];
    let row = one(app, db::INSERT_TASK, &params)?.ok_or_else(|| ApiError::Internal("insert returned no row".into()))?;
    let location = format!("{collection}/{}", row.try_get::<_, i64>(0)?);
    Ok(task(201, &row)?.with_unique_header("Location", location))
}

pub fn get(app: &App, user: &UserId, id: i64) -> Result<Response, ApiError> {
    task(200, &one(app, db::GET_TASK, &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)])?.ok_or(NOT_FOUND)?)
}

/// `PUT`: the title is required; absent optional fields stay as they are.
pub fn replace(app: &App, user: &UserId, request: &Request, id: i64) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, true)?;
    apply(app, user, id, fields)
}

/// `PATCH`: any subset of the fields; none at all changes nothing.
pub fn update(app: &App, user: &UserId, request: &Request, id: i64) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, false)?;
    apply(app, user, id, fields)
}

fn apply(app: &App, user: &UserId, id: i64, fields: Fields) -> Result<Response, ApiError> {
    if fields.is_empty() {
        return get(app, user, id);
    }
    let title = fields.title.map(|Title(t)| t);
    let description_present = fields.description.is_some();
    let description = fields.description.and_then(|Description(d)| d);
    let params: [(&(dyn ToSql + Sync), Type); 6] = [
        (&id, Type::INT8),
        (&user.as_str(), Type::TEXT),
        (&title, Type::TEXT),
        (&description_present, Type::BOOL),
        (&description, Type::TEXT),
        (&fields.completed, Type::BOOL),
    ];
    task(200, &one(app, db::UPDATE_TASK, &params)?.ok_or(NOT_FOUND)?)
}

/// `PATCH .../complete`: no body or `{}` toggles; `{"completed": bool}` sets.
pub fn complete(app: &App, user: &UserId, request: &Request, id: i64) -> Result<Response, ApiError> {
    let set = match read_json(request)? {
        None => None,
        Some(body) => match as_object(&body)?.get("completed") {
            None => None,
            Some(value) => Some(completed(value).map_err(|e| ApiError::Validation(vec![e]))?),
        },
    };
    let params: [(&(dyn ToSql + Sync), Type); 3] =
        [(&id, Type::INT8), (&user.as_str(), Type::TEXT), (&set, Type::BOOL)];
    task(200, &one(app, db::COMPLETE_TASK, &params)?.ok_or(NOT_FOUND)?)
}

pub fn delete(app: &App, user: &UserId, id: i64) -> Result<Response, ApiError> {
    one(app, db::DELETE_TASK, &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)])?.ok_or(NOT_FOUND)?;
    Ok(Response::empty_204())
}

/// The list's query parameters, validated.
#[derive(Debug, PartialEq, Eq)]
pub struct ListQuery {
    status: &'static str,
    sort: &'static str,
    order: &'static str,
    q: Option<String>,
    limit: i64,
    offset: i64,
}

impl ListQuery {
    /// Parses the raw query string. Names and values are lower case; unknown names are ignored;
    /// a repeated or empty parameter is an error (but `q=` means no filter); each bad
    /// parameter is reported once.
    pub fn parse(raw: &str) -> Result<ListQuery, ApiError> {
        const NAMES: [&str; 6] = ["status", "sort", "order", "q", "limit", "offset"];
        let (mut values, mut judged, mut errors): ([Option<String>; 6], [bool; 6], Vec<FieldError>) =
            Default::default();
        let decode = |text: &str| percent_decode(&text.replace('+', " ")).and_then(|v| String::from_utf8(v).ok());
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(i) = decode(name).and_then(|name| NAMES.iter().position(|n| *n == name)) else { continue };
            let problem = match decode(value) {
                _ if values[i].is_some() || judged[i] => ("must not be repeated", "repeated"),
                None => ("is not valid percent-encoded UTF-8", "encoding"),
                Some(v) if v.is_empty() && NAMES[i] != "q" => ("must not be empty", "missing"),
                Some(v) => {
                    values[i] = Some(v);
                    continue;
                }
            };
            if !std::mem::replace(&mut judged[i], true) {
                errors.push(FieldError::new(vec!["query", NAMES[i]], problem.0, problem.1));
            }
            values[i] = None; // judged already: the default stands in
        }
        let mut choose = |i: usize, allowed: &[&'static str], msg: &'static str| match values[i].take() {
            None => allowed[0],
            Some(v) => allowed.iter().copied().find(|a| *a == v).unwrap_or_else(|| {
                errors.push(FieldError::new(vec!["query", NAMES[i]], msg, "enum"));
                allowed[0]
            }),
        };
        let status = choose(0, &["all", "pending", "completed"], "must be one of all, pending, completed");
        let sort = choose(1, &["created", "updated", "title"], "must be one of created, updated, title");
        let orders: &[&str] = if sort == "title" { &["asc", "desc"] } else { &["desc", "asc"] };
        let order = choose(2, orders, "must be one of asc, desc");
        let q = values[3].take().filter(|q| !q.is_empty());
        if let Some(Err((msg, kind))) = q.as_deref().map(|q| free_text(q, QUERY_MAX)) {
            errors.push(FieldError::new(vec!["query", "q"], msg, kind));
        }
        let mut integer =
            |i: usize, range: std::ops::RangeInclusive<i64>, default: i64, msg: &'static str| match values[i].take() {
                None => default,
                Some(v) => v
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| v.parse().ok())
                    .flatten()
                    .filter(|n| range.contains(n))
                    .unwrap_or_else(|| {
                        errors.push(FieldError::new(vec!["query", NAMES[i]], msg, "integer_range"));
                        default
                    }),
            };
        let limit = integer(4, 1..=LIMIT_MAX, LIMIT_DEFAULT, "must be an integer from 1 to 1000");
        let offset = integer(5, 0..=i64::MAX, 0, "must be an integer of 0 or more");
        if errors.is_empty() {
            Ok(ListQuery { status, sort, order, q, limit, offset })
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// This query at another offset, as a relative URL under `path`.
    fn link(&self, path: &str, offset: i64) -> String {
        let mut url = format!("{path}?status={}&sort={}&order={}", self.status, self.sort, self.order);
        if let Some(q) = &self.q {
            url.push_str("&q=");
            for b in q.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    url.push(char::from(b));
                } else {
                    url.push_str(&format!("%{b:02X}"));
                }
            }
        }
        url.push_str(&format!("&limit={}&offset={offset}", self.limit));
        url
    }
}

/// `GET` of the collection at `path`: a page, `X-Total-Count`, and `Link`s to the others.
pub fn list(app: &App, user: &UserId, request: &Request, path: &str) -> Result<Response, ApiError> {
    let query = ListQuery::parse(request.raw_query_string())?;
    let completed = match query.status {
        "completed" => Some(true),
        "pending" => Some(false),
        _ => None,
    };
    let descending = query.order == "desc";
    let Some((_, _, statement)) =
        db::LIST_TASKS.iter().find(|(sort, desc, _)| *sort == query.sort && *desc == descending)
    else {
        return Err(ApiError::Internal(format!("no list statement for {} {}", query.sort, query.order)));
    };
    let mut conn = app.pool.get()?;
    let rows = conn.query(
        *statement,
        &[
            (&user.as_str(), Type::TEXT),
            (&completed, Type::BOOL),
            (&query.q, Type::TEXT),
            (&query.limit, Type::INT8),
            (&query.offset, Type::INT8),
        ],
    )?;
    let total: i64 = match rows.first() {
        Some(row) => row.try_get(7)?,
        None if query.offset == 0 => 0,
        None => {
            let params: [(&(dyn ToSql + Sync), Type); 3] =
                [(&user.as_str(), Type::TEXT), (&completed, Type::BOOL), (&query.q, Type::TEXT)];
            let count = conn.query(db::COUNT_TASKS, &params)?.into_iter().next();
            count.ok_or_else(|| ApiError::Internal("count returned no row".into()))?.try_get(0)?
        }
    };
    drop(conn);
    let tasks = rows.iter().map(Task::from_row).collect::<Result<Vec<_>, _>>()?;
    let mut links = Vec::new();
    if query.offset.saturating_add(query.limit) < total {
        links.push(format!("<{}>; rel=\"next\"", query.link(path, query.offset + query.limit)));
    }
    if query.offset > 0 {
        let previous = query.offset.saturating_sub(query.limit).max(0);
        links.push(format!("<{}>; rel=\"prev\"", query.link(path, previous)));
    }
    let mut response = json(200, &tasks).with_unique_header("X-Total-Count", total.to_string());
    if !links.is_empty() {
        response = response.with_unique_header("Link", links.join(", "));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(result: Result<Fields, ApiError>) -> Vec<(Vec<&'static str>, &'static str)> {
        match result {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| (e.loc, e.kind)).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn titles_are_trimmed_then_checked() {
        assert_eq!(Title::parse(&json!("\tBuy\t")).unwrap().0, "Buy");
        assert_eq!(Title::parse(&json!("\u{3000} Buy \u{a0}")).unwrap().0, "Buy");
        assert_eq!(Title::parse(&json!("é".repeat(200))).unwrap().0.chars().count(), 200);
        let cases = [
            (json!(""), "string_length"),
            (json!("   "), "string_length"),
            (json!("x".repeat(201)), "string_length"),
            (json!("a\u{0}b"), "control_character"),
            (json!("a\nb"), "control_character"),
            (json!("a\u{85}b"), "control_character"),
            (json!(null), "string_type"),
            (json!(5), "string_type"),
            (json!(["a"]), "string_type"),
        ];
        for (value, kind) in cases {
            assert_eq!(Title::parse(&value).unwrap_err().kind, kind, "title {value}");
        }
    }

    #[test]
    fn descriptions_keep_newlines_and_tabs_but_no_other_control_characters() {
        assert_eq!(Description::parse(&json!(" a\n\tb\r ")).unwrap().0.as_deref(), Some(" a\n\tb\r "));
        assert_eq!(Description::parse(&json!("")).unwrap().0.as_deref(), Some(""));
        assert_eq!(Description::parse(&json!(null)).unwrap().0, None);
        assert!(Description::parse(&json!("x".repeat(1000))).is_ok());
        for (value, kind) in [
            (json!("x".repeat(1001)), "string_length"),
            (json!("a\u{0}"), "control_character"),
            (json!("a\u{7f}"), "control_character"),
            (json!(1), "string_type"),
            (json!(false), "string_type"),
        ] {
            assert_eq!(Description::parse(&value).unwrap_err().kind, kind, "description {value}");
        }
    }

    #[test]
    fn every_bad_field_is_reported() {
        let body = json!({"title": "", "description": 5, "completed": "yes"});
        assert_eq!(
            kinds(fields(&body, true)),
            vec![
                (vec!["body", "title"], "string_length"),
                (vec!["body", "description"], "string_type"),
                (vec!["body", "completed"], "bool_type")
            ]
        );
        assert_eq!(kinds(fields(&json!({}), true)), vec![(vec!["body", "title"], "missing")]);
        assert_eq!(kinds(fields(&json!([]), false)), vec![(vec!["body"], "object_type")]);
        assert_eq!(kinds(fields(&json!({"completed": null}), false)), vec![(vec!["body", "completed"], "bool_type")]);
        assert!(fields(&json!({"id": 5, "user_id": "x", "other": 1}), false).unwrap().is_empty());
    }

    #[test]
    fn list_query_defaults_and_rules() {
        let q = ListQuery::parse("").unwrap();
        assert_eq!((q.status, q.sort, q.order, q.limit, q.offset, q.q), ("all", "created", "desc", 100, 0, None));
        assert_eq!(ListQuery::parse("sort=title").unwrap().order, "asc");
        assert_eq!(ListQuery::parse("q=&Status=bogus&x=1").unwrap().q, None);
        assert_eq!(ListQuery::parse("q=a+b%25_").unwrap().q.as_deref(), Some("a b%_"));
        let bad = [
            "status=",
            "status=ALL",
            "sort=name",
            "order=up",
            "limit=0",
            "limit=1001",
            "limit=+5",
            "limit=1.5",
            "offset=-1",
            "limit=10&limit=10",
            "q=%00",
            "q=%ff",
            "q=%zz",
            "offset=99999999999999999999",
        ];
        for raw in bad {
            assert!(matches!(ListQuery::parse(raw), Err(ApiError::Validation(_))), "{raw}");
        }
        let count = |raw: &str| match ListQuery::parse(raw) {
            Err(ApiError::Validation(errors)) => errors.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(count("status=x&limit=0"), 2);
        assert_eq!(count("status="), 1, "an empty value is reported once");
        assert_eq!(count("limit=&offset="), 2);
        assert_eq!(count("status=done&status=all"), 1, "one error a parameter");
        assert_eq!(ListQuery::parse("sta%74us=completed").unwrap().status, "completed", "names are decoded");
    }

    #[test]
    fn links_carry_every_filter() {
        let q = ListQuery::parse("status=pending&sort=title&q=a%20b%26&limit=10").unwrap();
        assert_eq!(
            q.link("/api/tasks", 20),
            "/api/tasks?status=pending&sort=title&order=asc&q=a%20b%26&limit=10&offset=20"
        );
    }
}
