//! One rule for text: the handler (`tasks.rs`) and the table's CHECKs (migration 0003) accept
//! exactly the same titles, descriptions and tags, in databases of different locales and locale
//! providers; creating a task from any text answers 201 or a 422 naming the field, never 500;
//! and a constraint violation is logged without the row.

use std::cell::RefCell;

use postgres::error::SqlState;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use todo_api::error::{ApiError, db_cause};
use todo_api::tasks::{Body, Description, Title, fields};

use crate::common::*;

const MAX_CHAR: u32 = char::MAX as u32;

/// Unicode's Cc: what the contract calls a control character.
fn cc(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Migrated databases whose regex and character classification differ as much as this server
/// allows: the cluster's default (the test template), libc's "C" (PostgreSQL's own C rules) and
/// ICU's en-US when the server has ICU (ICU's `u_iscntrl` counts U+2028 and format characters).
fn databases() -> Vec<(&'static str, TestDb)> {
    let mut databases = vec![("default", TestDb::new()), ("libc C", TestDb::bare("ENCODING 'UTF8' LOCALE 'C'"))];
    let icu: i64 = admin().query_one("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'", &[]).unwrap().get(0);
    if icu > 0 {
        let options = "ENCODING 'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'";
        databases.push(("ICU en-US", TestDb::bare(options)));
    } else {
        eprintln!("this PostgreSQL has no ICU: the ICU database is left out");
    }
    for (_, db) in &databases {
        let mut client = db.client();
        todo_api::db::migrate(&mut client).unwrap();
        client.batch_execute("INSERT INTO users (id) VALUES ('text') ON CONFLICT DO NOTHING").unwrap();
    }
    databases
}

/// The code points `c` up to `last` for which the table refuses a `field` (a column of `tasks`)
/// of `a{c}b` (for tags, one tag `a{c}b`): every CHECK of the table on that column alone, read
/// from the catalog, evaluated for every Unicode scalar value up to `last` in one statement.
fn refused_by_table(client: &mut postgres::Client, field: &str, last: u32) -> Vec<u32> {
    let checks: String = client
        .query_one(
            "SELECT string_agg(format('(%s) IS NOT FALSE', pg_get_expr(conbin, conrelid)), ' AND ')
             FROM pg_constraint
             WHERE conrelid = 'tasks'::regclass AND contype = 'c'
               AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'tasks'::regclass AND attname = $1)]",
            &[&field],
        )
        .unwrap()
        .get(0);
    let value = if field == "tags" { "ARRAY['a' || chr(cp) || 'b']" } else { "'a' || chr(cp) || 'b'" };
    let sql = format!(
        "SELECT cp FROM generate_series(1, {last}) AS cp, LATERAL (SELECT {value} AS {field}) AS tasks
         WHERE cp NOT BETWEEN 55296 AND 57343 AND NOT ({checks})
         ORDER BY cp"
    );
    client.query(&sql, &[]).unwrap().iter().map(|row| row.get::<_, i32>(0) as u32).collect()
}

/// Every scalar value for titles and descriptions; the Basic Multilingual Plane for tags, whose
/// check, a PL/pgSQL function, costs a microsecond or two a call (the random texts below
/// reach the other planes).
const SWEEPS: [(&str, u32); 3] = [("title", MAX_CHAR), ("description", MAX_CHAR), ("tags", 0xFFFF)];

#[test]
fn every_code_point_is_judged_alike_by_the_handler_and_the_table() {
    let databases = databases();
    std::thread::scope(|scope| {
        // The table's verdicts, a database to a thread, while the handler's are computed here.
        let tables: Vec<_> = databases
            .iter()
            .map(|(locale, db)| {
                scope.spawn(move || {
                    let mut client = db.client();
                    (*locale, SWEEPS.map(|(field, last)| refused_by_table(&mut client, field, last)))
                })
            })
            .collect();
        let refused_by_handler = |last: u32, valid: &mut dyn FnMut(String) -> bool| -> Vec<u32> {
            // U+0000 cannot be stored in PostgreSQL text at all; the handler refuses it.
            assert!(!valid("a\u{0}b".to_owned()));
            (1..=last).filter_map(char::from_u32).filter(|c| !valid(format!("a{c}b"))).map(u32::from).collect()
        };
        let title = refused_by_handler(MAX_CHAR, &mut |text| Title::parse(&Value::String(text)).is_ok());
        let description = refused_by_handler(MAX_CHAR, &mut |text| Description::parse(&Value::String(text)).is_ok());
        let mut body = json!({"title": "t", "tags": [""]});
        let tag = refused_by_handler(SWEEPS[2].1, &mut |text| {
            body["tags"][0] = Value::String(text);
            fields(&body, Body::Create).is_ok()
        });
        let cc_but = |allowed: &[char]| -> Vec<u32> {
            let chars = (1..=MAX_CHAR).filter_map(char::from_u32);
            chars.filter(|&c| cc(c) && !allowed.contains(&c)).map(u32::from).collect()
        };
        assert_eq!(title, cc_but(&[]));
        assert_eq!(description, cc_but(&['\t', '\n', '\r']));
        assert_eq!(tag, cc_but(&[]));
        for table in tables {
            let (locale, [table_title, table_description, table_tag]) = table.join().unwrap();
            assert_eq!(table_title, title, "titles, {locale}");
            assert_eq!(table_description, description, "descriptions, {locale}");
            assert_eq!(table_tag, tag, "tags, {locale}");
        }
    });
}

/// Characters where text rules tend to part: line and paragraph separators, joiners, format
/// characters, the BOM, noncharacters, the last scalar value, combining marks (alone when they
/// start a string or follow a space), a tag character, letters whose lower case is longer.
const EDGES: &[char] = &[
    '\u{2028}',
    '\u{2029}',
    '\u{200D}',
    '\u{200B}',
    '\u{200C}',
    '\u{200E}',
    '\u{202E}',
    '\u{2066}',
    '\u{FEFF}',
    '\u{00AD}',
    '\u{061C}',
    '\u{180E}',
    '\u{FFFF}',
    '\u{FFFE}',
    '\u{FDD0}',
    '\u{1FFFE}',
    '\u{10FFFF}',
    '\u{E0001}',
    '\u{0301}',
    '\u{0300}',
    '\u{20DD}',
    '\u{FE0F}',
    '\u{1F3FB}',
    '\u{1F600}',
    '\u{1D11E}',
    'İ',
    'ẞ',
    'Σ',
    'ﬃ',
];

/// Unicode `White_Space`, which Rust's `trim` removes: U+0085 is also a control character.
const SPACES: &[char] = &[
    '\t', '\n', '\u{B}', '\u{C}', '\r', ' ', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2007}', '\u{200A}',
    '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

/// Emoji ZWJ sequences and a lone joiner.
const SEQUENCES: &[&str] = &["👨\u{200D}👩\u{200D}👧\u{200D}👦", "🏳\u{FE0F}\u{200D}🌈", "👩🏽\u{200D}💻", "\u{200D}"];

/// One piece of text: mostly letters, often an edge case, sometimes any scalar value.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::char::range('a', 'z').prop_map(String::from),
        4 => proptest::sample::select(EDGES).prop_map(String::from),
        2 => proptest::sample::select(SPACES).prop_map(String::from),
        2 => any::<char>().prop_map(String::from),
        1 => proptest::sample::select(SEQUENCES).prop_map(str::to_owned),
    ]
}

/// A C0 or C1 control character.
fn control() -> impl Strategy<Value = char> {
    prop_oneof![proptest::char::range('\u{0}', '\u{1f}'), proptest::char::range('\u{7f}', '\u{9f}')]
}

/// Text of about `short` or `long` characters (so near its field's limit), with white space
/// around it or not, and no, one or two control characters somewhere.
fn text(short: std::ops::Range<usize>, long: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    let length = prop_oneof![short.prop_map(|n| n), long.prop_map(|n| n)];
    let spaces = || proptest::collection::vec(proptest::sample::select(SPACES), 0..3);
    let controls = prop_oneof![3 => Just(Vec::new()), 2 => proptest::collection::vec((any::<proptest::sample::Index>(), control()), 1..3)];
    (length.prop_flat_map(|n| proptest::collection::vec(piece(), n)), spaces(), spaces(), controls).prop_map(
        |(pieces, before, after, controls)| {
            let mut chars: Vec<char> = pieces.concat().chars().collect();
            for (at, c) in controls {
                chars.insert(at.index(chars.len() + 1), c);
            }
            before.into_iter().chain(chars).chain(after).collect()
        },
    )
}

fn title() -> impl Strategy<Value = String> {
    text(0..8, 195..=205)
}

fn description() -> impl Strategy<Value = String> {
    text(0..8, 995..=1005)
}

/// 0 to 3 tags, or about 20 (the limit on their number).
fn tags() -> impl Strategy<Value = Vec<String>> {
    let tag = || text(0..6, 46..=54);
    prop_oneof![4 => proptest::collection::vec(tag(), 0..4), 1 => proptest::collection::vec(tag(), 19..23)]
}

/// A tag as stored: trimmed and lower-cased (API.md, "Task fields").
fn stored_tag(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// The tags as stored: each stored, unique, sorted.
fn stored_tags(raw: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = raw.iter().map(|t| stored_tag(t)).collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Whether the table takes a task with these values: an INSERT in a transaction rolled back.
/// `Err` holds the constraint it broke; U+0000, which no text column can hold, is `"NUL"`.
fn table_takes(
    client: &mut postgres::Client,
    title: &str,
    description: Option<&str>,
    tags: &[String],
) -> Result<(), String> {
    let mut tx = client.transaction().unwrap();
    let inserted = tx.execute(
        "INSERT INTO tasks (user_id, title, description, tags) VALUES ('text', $1, $2, $3)",
        &[&title, &description, &tags],
    );
    drop(tx); // rolled back
    let Err(e) = inserted else { return Ok(()) };
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e}"));
    let nul =
        title.contains('\0') || description.is_some_and(|d| d.contains('\0')) || tags.iter().any(|t| t.contains('\0'));
    if *db.code() == SqlState::CHECK_VIOLATION {
        Err(db.constraint().unwrap_or_default().to_owned())
    } else if *db.code() == SqlState::CHARACTER_NOT_IN_REPERTOIRE && nul {
        Err("NUL".to_owned())
    } else {
        panic!("{}", db_cause(&e))
    }
}

#[test]
fn random_text_is_judged_alike_by_the_handler_and_the_table() {
    let databases = databases();
    // The runner takes a `Fn`: the connections are borrowed mutably through a cell.
    let clients: RefCell<Vec<_>> = RefCell::new(databases.iter().map(|(locale, db)| (*locale, db.client())).collect());
    let config = ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    runner
        .run(&(title(), description(), tags()), |(title, description, tags)| {
            let title_ok = Title::parse(&json!(title)).is_ok();
            let description_ok = Description::parse(&json!(description)).is_ok();
            let tags_ok = fields(&json!({"title": "t", "tags": tags}), Body::Create).is_ok();
            let tags = stored_tags(&tags);
            for (locale, client) in clients.borrow_mut().iter_mut() {
                let taken = table_takes(client, title.trim(), None, &[]);
                prop_assert_eq!(title_ok, taken.is_ok(), "title {:?} in {}: {:?}", title, locale, taken);
                let taken = table_takes(client, "t", Some(&description), &[]);
                prop_assert_eq!(
                    description_ok,
                    taken.is_ok(),
                    "description {:?} in {}: {:?}",
                    description,
                    locale,
                    taken
                );
                let taken = table_takes(client, "t", None, &tags);
                prop_assert_eq!(tags_ok, taken.is_ok(), "tags {:?} in {}: {:?}", tags, locale, taken);
            }
            Ok(())
        })
        .unwrap();
}

/// The contract's text rules, written out again from API.md: the fields a create body with
/// these values gets a 422 for.
fn invalid_fields(title: &str, description: Option<&Option<String>>, tags: Option<&Vec<String>>) -> Vec<&'static str> {
    let clean = |text: &str, allowed: &[char]| !text.chars().any(|c| cc(c) && !allowed.contains(&c));
    let length = |text: &str| text.chars().count();
    let mut invalid = Vec::new();
    let title = title.trim();
    if !clean(title, &[]) || !(1..=200).contains(&length(title)) {
        invalid.push("title");
    }
    if let Some(Some(description)) = description
        && (!clean(description, &['\t', '\n', '\r']) || length(description) > 1000)
    {
        invalid.push("description");
    }
    if let Some(tags) = tags {
        let each = tags.iter().map(|t| stored_tag(t)).all(|t| clean(&t, &[]) && (1..=50).contains(&length(&t)));
        if !each || stored_tags(tags).len() > 20 {
            invalid.push("tags");
        }
    }
    invalid
}

#[test]
fn creating_a_task_from_any_text_answers_201_with_what_was_stored_or_a_422_naming_the_field() {
    let app = spawn_app();
    let description =
        prop_oneof![1 => Just(None), 1 => Just(Some(None)), 4 => description().prop_map(|d| Some(Some(d)))];
    let tags = prop_oneof![1 => Just(None), 3 => tags().prop_map(Some)];
    let config = ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    runner
        .run(&(title(), description, tags), |(title, description, tags)| {
            let mut body = json!({"title": title});
            if let Some(description) = &description {
                body["description"] = json!(description);
            }
            if let Some(tags) = &tags {
                body["tags"] = json!(tags);
            }
            let reply = app.send_json("POST", "/api/tasks", "alice", body.clone());
            let invalid = invalid_fields(&title, description.as_ref(), tags.as_ref());
            match reply.status {
                201 => {
                    prop_assert!(invalid.is_empty(), "201 for {} with invalid {:?}", body, invalid);
                    let created = reply.json();
                    let id = created["id"].as_i64().unwrap();
                    let read = app.get(&format!("/api/tasks/{id}"), "alice");
                    prop_assert_eq!(read.status, 200);
                    let read = read.json();
                    prop_assert_eq!(&read, &created, "read back as created");
                    prop_assert_eq!(&read["title"], &json!(title.trim()));
                    prop_assert_eq!(&read["description"], &json!(description.flatten()));
                    prop_assert_eq!(&read["tags"], &json!(tags.as_deref().map(stored_tags).unwrap_or_default()));
                }
                422 => {
                    let errors = reply.error(422, "validation_error")["errors"].clone();
                    let named: Vec<&str> = errors
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["loc"].as_array().unwrap().last().and_then(Value::as_str).unwrap())
                        .collect();
                    prop_assert_eq!(named, invalid, "{}", errors);
                }
                status => prop_assert!(false, "{} for {}: {}", status, body, String::from_utf8_lossy(&reply.body)),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_check_violation_is_logged_with_the_constraint_and_never_the_row() {
    let db = TestDb::new();
    let mut client = db.client();
    client.batch_execute("INSERT INTO users (id) VALUES ('text')").unwrap();
    let secret = "my diary: \u{7}";
    let e = client
        .execute("INSERT INTO tasks (user_id, title) VALUES ('text', $1)", &[&secret])
        .expect_err("the table refuses a control character");
    // What the server's error carries, and the log must not.
    let full = e.as_db_error().unwrap().to_string();
    assert!(full.contains("Failing row contains") && full.contains("my diary"), "{full}");
    let cause = db_cause(&e);
    assert_eq!(
        cause,
        "ERROR 23514: new row for relation \"tasks\" violates check constraint \"tasks_title\" \
         (schema public, table tasks, constraint tasks_title)"
    );
    let ApiError::Internal(logged) = ApiError::from(e) else { panic!("a check violation is a 500") };
    assert!(!logged.contains("diary") && !logged.contains("Failing row"), "{logged}");
    assert!(logged.contains("tasks_title"), "{logged}");
}

#[test]
fn the_migrations_refuse_a_database_not_in_utf8() {
    let db = TestDb::bare("ENCODING 'SQL_ASCII' LOCALE 'C'");
    let error = todo_api::db::migrate(&mut db.client()).unwrap_err();
    assert!(error.contains("0003_text_rule.sql") && error.contains("SQL_ASCII, and todo-api needs UTF8"), "{error}");
}
