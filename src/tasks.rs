//! Task handlers: parse the input, run one owner-scoped statement, shape the response.
//!
//! Invariants a reviewer can check in this file alone:
//! - every handler takes the caller's `UserId` and passes it to SQL, which does the scoping;
//! - a title or description reaches SQL only as a `Title` / `Description`, and every other
//!   field only as the value its check returned (`fields`, `ListQuery::parse`);
//! - a task of another user is indistinguishable from a missing one (404);
//! - every invalid field of a body or query is reported, not just the first;
//! - the text rules here decide; the table's CHECKs (`sql/migrations/0003_text_rule.sql`) accept
//!   exactly the values they let through (a control character is Unicode's Cc,
//!   `char::is_control`), so valid input cannot fail a constraint (tests/api/text.rs).

use std::time::SystemTime;

use postgres::Row;
use postgres::types::{ToSql, Type};
use rouille::{Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::App;
use crate::auth::UserId;
use crate::db::{self, Params, Sql};
use crate::error::{ApiError, FieldError};
use crate::wire::{Timestamp, json, parse_timestamp, percent_decode, read_json, rfc3339};

const NOT_FOUND: ApiError = ApiError::NotFound("Task not found");
const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 1000;
const QUERY_MAX: usize = 1000;
const TAG_MAX: usize = 50;
const TAGS_MAX: usize = 20;
const LIMIT_MAX: i64 = 1000;
const LIMIT_DEFAULT: i64 = 100;
const PRIORITIES: [&str; 3] = ["high", "medium", "low"];
const RECURRENCES: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];
/// The table constraint a write breaks when it would leave a recurring task without a due date.
const RECURRENCE_NEEDS_DUE: &str = "tasks_recurrence_needs_due";

/// A task as stored and as sent, borrowed from its row.
#[derive(Debug, Serialize)]
pub struct Task<'a> {
    pub id: i64,
    pub user_id: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub priority: &'a str,
    pub tags: Vec<&'a str>,
    pub due_date: Option<Timestamp>,
    pub remind_at: Option<Timestamp>,
    pub recurrence: Option<&'a str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task<'_> {
    /// The one row mapping; every task statement returns these twelve columns first.
    fn from_row(row: &Row) -> Result<Task<'_>, postgres::Error> {
        let time = |i: usize| row.try_get::<_, Option<SystemTime>>(i).map(|t| t.map(Timestamp));
        Ok(Task {
            id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            title: row.try_get(2)?,
            description: row.try_get(3)?,
            completed: row.try_get(4)?,
            priority: row.try_get(5)?,
            tags: row.try_get(6)?,
            due_date: time(7)?,
            remind_at: time(8)?,
            recurrence: row.try_get(9)?,
            created_at: Timestamp(row.try_get(10)?),
            updated_at: Timestamp(row.try_get(11)?),
        })
    }
}

/// A title that passed validation: trimmed (Unicode `White_Space`), then 1 to 200 characters
/// (`char_length`), no control characters (Cc: U+0000-U+001F, U+007F-U+009F). Everything else
/// is allowed: U+2028, U+200D, U+FEFF, combining marks, noncharacters.
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

/// A tag as stored and compared: trimmed and lower-cased, then 1 to 50 characters without
/// control characters; `None` otherwise.
fn tag(raw: &str) -> Option<String> {
    let tag = raw.trim().to_lowercase();
    ((1..=TAG_MAX).contains(&tag.chars().count()) && !tag.chars().any(char::is_control)).then_some(tag)
}

/// A body's tags: each one checked, duplicates dropped, at most 20, sorted.
fn tags(value: &Value) -> Result<Vec<String>, FieldError> {
    let error = |msg, kind| FieldError::new(vec!["body", "tags"], msg, kind);
    let each = "must be an array of strings of 1 to 50 characters without control characters";
    let Value::Array(items) = value else { return Err(error(each, "list_type")) };
    let mut tags = items.iter().map(|item| item.as_str().and_then(tag)).collect::<Option<Vec<_>>>();
    let tags = tags.as_mut().ok_or_else(|| error(each, "tag"))?;
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > TAGS_MAX {
        return Err(error("must have at most 20 tags", "too_long"));
    }
    Ok(std::mem::take(tags))
}

/// The value, which must be one of `allowed`.
fn one_of(
    value: &Value,
    loc: Vec<&'static str>,
    allowed: &[&'static str],
    msg: &'static str,
) -> Result<&'static str, FieldError> {
    let found = value.as_str().and_then(|v| allowed.iter().find(|a| **a == v));
    found.copied().ok_or_else(|| FieldError::new(loc, msg, "enum"))
}

/// A date-time or a date (`due_date`, `remind_at`).
fn instant(value: &Value, name: &'static str) -> Result<SystemTime, FieldError> {
    let msg = "must be an RFC 3339 date-time, a date (YYYY-MM-DD) or null";
    value.as_str().and_then(parse_timestamp).ok_or_else(|| FieldError::new(vec!["body", name], msg, "datetime"))
}

/// A field that may be `null`: `Ok(None)` for null, else what `parse` makes of the value.
fn nullable<T>(value: &Value, parse: impl FnOnce(&Value) -> Result<T, FieldError>) -> Result<Option<T>, FieldError> {
    if value.is_null() { Ok(None) } else { parse(value).map(Some) }
}

/// What a body is for: a new task, or the replacement or update of a stored one (whose absent
/// fields stay as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Create,
    Replace,
    Update,
}

/// The known fields of a body; `None` means absent, `Some(None)` null.
#[derive(Debug, Default)]
pub struct Fields {
    title: Option<Title>,
    description: Option<Description>,
    completed: Option<bool>,
    priority: Option<&'static str>,
    tags: Option<Vec<String>>,
    due_date: Option<Option<SystemTime>>,
    remind_at: Option<Option<SystemTime>>,
    recurrence: Option<Option<&'static str>>,
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.completed.is_none()
            && self.priority.is_none()
            && self.tags.is_none()
            && self.due_date.is_none()
            && self.remind_at.is_none()
            && self.recurrence.is_none()
    }
}

/// Validates a body's known fields (unknown ones are ignored), reporting every bad field.
pub fn fields(body: &Value, purpose: Body) -> Result<Fields, ApiError> {
    let object = as_object(body)?;
    let mut errors = Vec::new();
    let title = match object.get("title") {
        None if purpose != Body::Update => {
            keep(&mut errors, Err::<Title, _>(FieldError::new(vec!["body", "title"], "is required", "missing")))
        }
        None => None,
        Some(value) => keep(&mut errors, Title::parse(value)),
    };
    let field = |name| object.get(name);
    let description = field("description").and_then(|v| keep(&mut errors, Description::parse(v)));
    let completed = field("completed").and_then(|v| keep(&mut errors, completed(v)));
    let priority = field("priority").and_then(|v| {
        keep(&mut errors, one_of(v, vec!["body", "priority"], &PRIORITIES, "must be one of high, medium, low"))
    });
    let tags = field("tags").and_then(|v| keep(&mut errors, tags(v)));
    let due_date = field("due_date").and_then(|v| keep(&mut errors, nullable(v, |v| instant(v, "due_date"))));
    let remind_at = field("remind_at").and_then(|v| keep(&mut errors, nullable(v, |v| instant(v, "remind_at"))));
    let recurrence = field("recurrence").and_then(|v| {
        let msg = "must be one of daily, weekly, monthly, yearly, or null";
        keep(&mut errors, nullable(v, |v| one_of(v, vec!["body", "recurrence"], &RECURRENCES, msg)))
    });
    // A recurrence without a due date, as far as the body alone tells; the table's constraint
    // catches the rest (a stored recurrence whose due date a PATCH clears, and the reverse).
    let no_due_date = match field("due_date") {
        Some(value) => value.is_null(),
        None => purpose == Body::Create,
    };
    if matches!(recurrence, Some(Some(_))) && no_due_date {
        errors.push(needs_due_date());
    }
    if errors.is_empty() {
        Ok(Fields { title, description, completed, priority, tags, due_date, remind_at, recurrence })
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn needs_due_date() -> FieldError {
    FieldError::new(vec!["body", "recurrence"], "needs a due_date", "due_date_required")
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

/// Runs one statement on one task: its row, or `None` when the caller has no such task. A
/// write that would leave a recurring task without a due date is the client's error (422).
fn one(app: &App, sql: Sql, params: &Params) -> Result<Option<Row>, ApiError> {
    let mut conn = app.connection()?;
    match conn.query(sql, params) {
        Ok(rows) => Ok(rows.into_iter().next()),
        Err(e) if e.as_db_error().and_then(|db| db.constraint()) == Some(RECURRENCE_NEEDS_DUE) => {
            Err(ApiError::Validation(vec![needs_due_date()]))
        }
        Err(e) => Err(e.into()),
    }
}

/// The task in `row` as the response body.
fn task(status: u16, row: &Row) -> Result<Response, ApiError> {
    Ok(json(status, &Task::from_row(row)?))
}

/// `POST`: a new task; `Location` is its path under `collection`, the request's family.
pub fn create(app: &App, user: &UserId, request: &Request, collection: &str) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, Body::Create)?;
    let Some(Title(title)) = fields.title else {
        return Err(ApiError::Internal("validated create body has no title".to_owned()));
    };
    let description = fields.description.and_then(|Description(d)| d);
    let completed = fields.completed.unwrap_or(false);
    let priority = fields.priority.unwrap_or("medium");
    let tags = fields.tags.unwrap_or_default();
    let (due_date, remind_at) = (fields.due_date.flatten(), fields.remind_at.flatten());
    let recurrence = fields.recurrence.flatten();
    let params: [(&(dyn ToSql + Sync), Type); 9] = [
        (&user.as_str(), Type::TEXT),
        (&title, Type::TEXT),
        (&description, Type::TEXT),
        (&completed, Type::BOOL),
        (&priority, Type::TEXT),
        (&tags, Type::TEXT_ARRAY),
        (&due_date, Type::TIMESTAMPTZ),
        (&remind_at, Type::TIMESTAMPTZ),
        (&recurrence, Type::TEXT),
    ];
    let row = one(app, db::INSERT_TASK, &params)?.ok_or_else(|| ApiError::Internal("insert returned no row".into()))?;
    let location = format!("{collection}/{}", row.try_get::<_, i64>(0)?);
    Ok(task(201, &row)?.with_unique_header("Location", location))
}

pub fn get(app: &App, user: &UserId, id: i64) -> Result<Response, ApiError> {
    task(200, &one(app, db::GET_TASK, &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)])?.ok_or(NOT_FOUND)?)
}

/// `PUT`: the title is required; absent optional fields stay as they are.
pub fn replace(app: &App, user: &UserId, request: &Request, id: i64, collection: &str) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, Body::Replace)?;
    apply(app, user, id, fields, false, collection)
}

/// `PATCH`: any subset of the fields; none at all changes nothing.
pub fn update(app: &App, user: &UserId, request: &Request, id: i64, collection: &str) -> Result<Response, ApiError> {
    let fields = fields(&required_body(request)?, Body::Update)?;
    apply(app, user, id, fields, false, collection)
}

/// `PATCH .../complete`: no body or `{}` toggles; `{"completed": bool}` sets.
pub fn complete(app: &App, user: &UserId, request: &Request, id: i64, collection: &str) -> Result<Response, ApiError> {
    let set = match read_json(request)? {
        None => None,
        Some(body) => match as_object(&body)?.get("completed") {
            None => None,
            Some(value) => Some(completed(value).map_err(|e| ApiError::Validation(vec![e]))?),
        },
    };
    apply(app, user, id, Fields { completed: set, ..Fields::default() }, set.is_none(), collection)
}

/// Writes the fields present (or toggles `completed`). A recurring task that became completed
/// has its next occurrence, named in a `Link` header in the request's family.
fn apply(
    app: &App,
    user: &UserId,
    id: i64,
    fields: Fields,
    toggle: bool,
    collection: &str,
) -> Result<Response, ApiError> {
    if fields.is_empty() && !toggle {
        return get(app, user, id);
    }
    let title = fields.title.map(|Title(t)| t);
    let description = split(fields.description.map(|Description(d)| d));
    let (due_date, remind_at, recurrence) = (split(fields.due_date), split(fields.remind_at), split(fields.recurrence));
    let params: [(&(dyn ToSql + Sync), Type); 15] = [
        (&id, Type::INT8),
        (&user.as_str(), Type::TEXT),
        (&title, Type::TEXT),
        (&description.0, Type::BOOL),
        (&description.1, Type::TEXT),
        (&fields.completed, Type::BOOL),
        (&toggle, Type::BOOL),
        (&fields.priority, Type::TEXT),
        (&fields.tags, Type::TEXT_ARRAY),
        (&due_date.0, Type::BOOL),
        (&due_date.1, Type::TIMESTAMPTZ),
        (&remind_at.0, Type::BOOL),
        (&remind_at.1, Type::TIMESTAMPTZ),
        (&recurrence.0, Type::BOOL),
        (&recurrence.1, Type::TEXT),
    ];
    let row = one(app, db::UPDATE_TASK, &params)?.ok_or(NOT_FOUND)?;
    let response = task(200, &row)?;
    Ok(match row.try_get::<_, Option<i64>>(12)? {
        Some(next) => response.with_unique_header("Link", format!("<{collection}/{next}>; rel=\"next-occurrence\"")),
        None => response,
    })
}

/// A nullable field as two statement parameters: whether it is present, and its value.
fn split<T>(field: Option<Option<T>>) -> (bool, Option<T>) {
    (field.is_some(), field.flatten())
}

pub fn delete(app: &App, user: &UserId, id: i64) -> Result<Response, ApiError> {
    one(app, db::DELETE_TASK, &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)])?.ok_or(NOT_FOUND)?;
    Ok(Response::empty_204())
}

/// A query string's parameters among `names`, percent-decoded, each problem reported once
/// under `["query", name]`. Names and values are lower case; unknown names are ignored; a
/// repeated parameter (but a `tag`) or an empty one (but `q`) is an error, and its default
/// stands in.
struct Query {
    names: &'static [&'static str],
    values: Vec<Vec<String>>,
    errors: Vec<FieldError>,
}

impl Query {
    fn parse(raw: &str, names: &'static [&'static str]) -> Query {
        let mut query = Query { names, values: vec![Vec::new(); names.len()], errors: Vec::new() };
        let mut judged = vec![false; names.len()];
        let decode = |text: &str| percent_decode(&text.replace('+', " ")).and_then(|v| String::from_utf8(v).ok());
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(i) = decode(name).and_then(|name| names.iter().position(|n| *n == name)) else { continue };
            let problem = match decode(value) {
                _ if judged[i] || (!query.values[i].is_empty() && names[i] != "tag") => {
                    ("must not be repeated", "repeated")
                }
                None => ("is not valid percent-encoded UTF-8", "encoding"),
                Some(v) if v.is_empty() && names[i] != "q" => ("must not be empty", "missing"),
                Some(v) => {
                    query.values[i].push(v);
                    continue;
                }
            };
            if !std::mem::replace(&mut judged[i], true) {
                query.errors.push(FieldError::new(vec!["query", names[i]], problem.0, problem.1));
            }
            query.values[i].clear(); // judged already: the default stands in
        }
        query
    }

    /// The values of `name`, taken.
    fn take_all(&mut self, name: &str) -> Vec<String> {
        let i = self.names.iter().position(|n| *n == name).unwrap_or_else(|| unreachable!("{name} is a known name"));
        std::mem::take(&mut self.values[i])
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.take_all(name).pop()
    }

    fn error(&mut self, name: &'static str, msg: &'static str, kind: &'static str) {
        self.errors.push(FieldError::new(vec!["query", name], msg, kind));
    }

    /// One of `allowed`; the first when absent (or wrong, with the error kept).
    fn one_of(&mut self, name: &'static str, allowed: &[&'static str], msg: &'static str) -> &'static str {
        match self.take(name) {
            None => allowed[0],
            Some(v) => allowed.iter().copied().find(|a| *a == v).unwrap_or_else(|| {
                self.error(name, msg, "enum");
                allowed[0]
            }),
        }
    }

    /// A plain decimal integer within `range`; `default` when absent (or wrong).
    fn integer(
        &mut self,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
        msg: &'static str,
    ) -> i64 {
        let value = self.take(name);
        let parsed = value.as_deref().map(|v| v.bytes().all(|b| b.is_ascii_digit()).then(|| v.parse().ok()).flatten());
        match parsed {
            None => default,
            Some(Some(n)) if range.contains(&n) => n,
            Some(_) => {
                self.error(name, msg, "integer_range");
                default
            }
        }
    }

    /// A date-time or a date, as in bodies.
    fn instant(&mut self, name: &'static str) -> Option<SystemTime> {
        let value = self.take(name)?;
        let parsed = parse_timestamp(&value);
        if parsed.is_none() {
            self.error(name, "must be an RFC 3339 date-time or a date (YYYY-MM-DD)", "datetime");
        }
        parsed
    }

    fn page(&mut self) -> (i64, i64) {
        let limit = self.integer("limit", 1..=LIMIT_MAX, LIMIT_DEFAULT, "must be an integer from 1 to 1000");
        let offset = self.integer("offset", 0..=i64::MAX, 0, "must be an integer of 0 or more");
        (limit, offset)
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.errors.is_empty() { Ok(value) } else { Err(ApiError::Validation(self.errors)) }
    }
}

/// A query-string value as it goes into a `Link` URL: unreserved bytes as they are, the rest
/// percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn instant_text(time: SystemTime) -> String {
    encode(rfc3339(time, &mut [0; 27]).unwrap_or_default())
}

/// The list's query parameters, validated.
#[derive(Debug, PartialEq, Eq)]
pub struct ListQuery {
    status: &'static str,
    sort: &'static str,
    order: &'static str,
    q: Option<String>,
    priority: Option<&'static str>,
    tags: Vec<String>,
    due_after: Option<SystemTime>,
    due_before: Option<SystemTime>,
    overdue: bool,
    limit: i64,
    offset: i64,
}

impl ListQuery {
    /// Parses the raw query string (see `Query` for the rules every parameter follows).
    pub fn parse(raw: &str) -> Result<ListQuery, ApiError> {
        const NAMES: &[&str] = &[
            "status",
            "sort",
            "order",
            "q",
            "priority",
            "tag",
            "due_after",
            "due_before",
            "overdue",
            "limit",
            "offset",
        ];
        let mut query = Query::parse(raw, NAMES);
        let status = query.one_of("status", &["all", "pending", "completed"], "must be one of all, pending, completed");
        let sorts = ["created", "updated", "title", "priority", "due_date"];
        let sort = query.one_of("sort", &sorts, "must be one of created, updated, title, priority, due_date");
        let orders: &[&str] = if matches!(sort, "title" | "due_date") { &["asc", "desc"] } else { &["desc", "asc"] };
        let order = query.one_of("order", orders, "must be one of asc, desc");
        let q = query.take("q").filter(|q| !q.is_empty());
        if let Some(Err((msg, kind))) = q.as_deref().map(|q| free_text(q, QUERY_MAX)) {
            query.error("q", msg, kind);
        }
        let priority = query.take("priority").map(|p| {
            let found = PRIORITIES.iter().copied().find(|a| *a == p);
            found.unwrap_or_else(|| {
                query.error("priority", "must be one of high, medium, low", "enum");
                "medium"
            })
        });
        // A task has at most 20 tags, so more different ones can match nothing.
        let mut tags = Vec::new();
        for raw in query.take_all("tag") {
            match tag(&raw) {
                Some(tag) if tags.contains(&tag) => {}
                Some(_) if tags.len() == TAGS_MAX => {
                    query.error("tag", "must not name more than 20 different tags", "too_long");
                    break;
                }
                Some(tag) => tags.push(tag),
                None => {
                    query.error("tag", "must be 1 to 50 characters without control characters", "tag");
                    break;
                }
            }
        }
        let due_after = query.instant("due_after");
        let due_before = query.instant("due_before");
        let overdue = query.one_of("overdue", &["false", "true"], "must be true or false") == "true";
        let (limit, offset) = query.page();
        let list = ListQuery { status, sort, order, q, priority, tags, due_after, due_before, overdue, limit, offset };
        query.finish(list)
    }

    /// This query at another offset, as a relative URL under `path`.
    fn link(&self, path: &str, offset: i64) -> String {
        let mut url = format!("{path}?status={}&sort={}&order={}", self.status, self.sort, self.order);
        if let Some(q) = &self.q {
            url.push_str(&format!("&q={}", encode(q)));
        }
        if let Some(priority) = self.priority {
            url.push_str(&format!("&priority={priority}"));
        }
        for tag in &self.tags {
            url.push_str(&format!("&tag={}", encode(tag)));
        }
        for (name, time) in [("due_after", self.due_after), ("due_before", self.due_before)] {
            if let Some(time) = time {
                url.push_str(&format!("&{name}={}", instant_text(time)));
            }
        }
        if self.overdue {
            url.push_str("&overdue=true");
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
    let Some((_, _, plain, tagged)) =
        db::LIST_TASKS.iter().find(|(sort, desc, _, _)| *sort == query.sort && *desc == descending)
    else {
        return Err(ApiError::Internal(format!("no list statement for {} {}", query.sort, query.order)));
    };
    let tags = (!query.tags.is_empty()).then_some(&query.tags);
    let task_fields = query.priority.is_some()
        || tags.is_some()
        || query.due_after.is_some()
        || query.due_before.is_some()
        || query.overdue;
    let filters: [(&(dyn ToSql + Sync), Type); 9] = [
        (&user.as_str(), Type::TEXT),
        (&completed, Type::BOOL),
        (&query.q, Type::TEXT),
        (&task_fields, Type::BOOL),
        (&query.priority, Type::TEXT),
        (&query.due_after, Type::TIMESTAMPTZ),
        (&query.due_before, Type::TIMESTAMPTZ),
        (&query.overdue, Type::BOOL),
        (&tags, Type::TEXT_ARRAY),
    ];
    let statement = if tags.is_some() { *tagged } else { *plain };
    page(app, statement, &filters, query.limit, query.offset, |offset| query.link(path, offset))
}

/// The query of the reminders: `before` (default: now) and the page.
#[derive(Debug, PartialEq, Eq)]
pub struct RemindersQuery {
    before: SystemTime,
    limit: i64,
    offset: i64,
}

impl RemindersQuery {
    pub fn parse(raw: &str, now: SystemTime) -> Result<RemindersQuery, ApiError> {
        let mut query = Query::parse(raw, &["before", "limit", "offset"]);
        let before = query.instant("before").unwrap_or(now);
        let (limit, offset) = query.page();
        query.finish(RemindersQuery { before, limit, offset })
    }
}

/// `GET .../tasks/reminders`: the caller's tasks to remind of, what a notification worker
/// polls. The links carry the `before` this page was read with, so paging does not shift as
/// time passes.
pub fn reminders(app: &App, user: &UserId, request: &Request, path: &str) -> Result<Response, ApiError> {
    let query = RemindersQuery::parse(request.raw_query_string(), SystemTime::now())?;
    let filters: [(&(dyn ToSql + Sync), Type); 2] = [(&user.as_str(), Type::TEXT), (&query.before, Type::TIMESTAMPTZ)];
    let link = |offset| format!("{path}?before={}&limit={}&offset={offset}", instant_text(query.before), query.limit);
    page(app, db::REMINDERS, &filters, query.limit, query.offset, link)
}

/// A page of tasks from a statement whose parameters are `filters`, then the limit and the
/// offset, and whose column 12 is the number of rows under the filters. A page past the end
/// has no row to tell it, so the first row is asked for instead.
fn page(
    app: &App,
    sql: Sql,
    filters: &Params,
    limit: i64,
    offset: i64,
    link: impl Fn(i64) -> String,
) -> Result<Response, ApiError> {
    fn run(
        conn: &mut db::Conn,
        sql: Sql,
        filters: &Params,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Row>, db::QueryError> {
        let mut params = filters.to_vec();
        params.extend([(&limit as &(dyn ToSql + Sync), Type::INT8), (&offset, Type::INT8)]);
        conn.query(sql, &params)
    }
    let mut conn = app.connection()?;
    let rows = run(&mut conn, sql, filters, limit, offset)?;
    let total: i64 = match rows.first() {
        Some(row) => row.try_get(12)?,
        None if offset == 0 => 0,
        None => run(&mut conn, sql, filters, 1, 0)?.first().map(|row| row.try_get(12)).transpose()?.unwrap_or(0),
    };
    drop(conn);
    let tasks = rows.iter().map(Task::from_row).collect::<Result<Vec<_>, _>>()?;
    let mut links = Vec::new();
    if offset.saturating_add(limit) < total {
        links.push(format!("<{}>; rel=\"next\"", link(offset + limit)));
    }
    if offset > 0 {
        links.push(format!("<{}>; rel=\"prev\"", link(offset.saturating_sub(limit).max(0))));
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
    fn a_control_character_is_exactly_unicode_cc_as_the_migration_spells_it() {
        let cc = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
        let differ: Vec<char> =
            (0..=char::MAX as u32).filter_map(char::from_u32).filter(|&c| c.is_control() != cc(c)).collect();
        assert!(differ.is_empty(), "{differ:?}");
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
            kinds(fields(&body, Body::Create)),
            vec![
                (vec!["body", "title"], "string_length"),
                (vec!["body", "description"], "string_type"),
                (vec!["body", "completed"], "bool_type")
            ]
        );
        assert_eq!(kinds(fields(&json!({}), Body::Create)), vec![(vec!["body", "title"], "missing")]);
        assert_eq!(kinds(fields(&json!([]), Body::Update)), vec![(vec!["body"], "object_type")]);
        assert_eq!(
            kinds(fields(&json!({"completed": null}), Body::Update)),
            vec![(vec!["body", "completed"], "bool_type")]
        );
        assert!(fields(&json!({"id": 5, "user_id": "x", "other": 1}), Body::Update).unwrap().is_empty());
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
        // Tags: repeatable, normalised, counted once; at most 20 different ones.
        let tags = |raw: &str| ListQuery::parse(raw).map(|q| q.tags);
        assert_eq!(tags("tag=Work&tag=%20home&tag=work").unwrap(), ["work", "home"]);
        let twenty: Vec<String> = (0..20).map(|i| format!("tag=t{i}")).collect();
        assert_eq!(tags(&format!("{}&tag=T0", twenty.join("&"))).unwrap().len(), 20);
        assert_eq!(count(&format!("{}&tag=t20", twenty.join("&"))), 1);
        assert_eq!(count("tag=&tag=%07&tag=ok"), 1, "a bad tag is reported once");
        assert_eq!(count("overdue=yes&due_after=2026-02-30&due_before=x&priority=HIGH&sort=due"), 5);
        let q = ListQuery::parse("sort=due_date&priority=low&overdue=true&due_before=2026-01-08").unwrap();
        assert_eq!((q.order, q.priority, q.overdue), ("asc", Some("low"), true));
        assert_eq!(ListQuery::parse("sort=priority").unwrap().order, "desc");
    }

    #[test]
    fn links_carry_every_filter() {
        let q = ListQuery::parse("status=pending&sort=title&q=a%20b%26&limit=10").unwrap();
        assert_eq!(
            q.link("/api/tasks", 20),
            "/api/tasks?status=pending&sort=title&order=asc&q=a%20b%26&limit=10&offset=20"
        );
        let q = ListQuery::parse("tag=b%26c&tag=a&due_after=2026-01-08T12:00:00%2B02:00&overdue=true&priority=high")
            .unwrap();
        assert_eq!(
            q.link("/api/u1/tasks", 0),
            "/api/u1/tasks?status=all&sort=created&order=desc&priority=high&tag=b%26c&tag=a\
             &due_after=2026-01-08T10%3A00%3A00.000000Z&overdue=true&limit=100&offset=0"
        );
    }
}
