//! Fuzzes request input validation (`todo_api::tasks`).
//!
//! The bytes are a request body, parsed as JSON and validated as a create / replace body
//! (`fields(.., Body::Create)`) and as a patch body (`fields(.., Body::Update)`); and, as text (lossily, when
//! not UTF-8), a list query string for `ListQuery::parse`.
//!
//! Properties checked, besides "never panics":
//! - a body valid with the title required is valid with it optional;
//! - a body that is not a JSON object is never valid;
//! - every rejection is a `422` listing at least one field error under `body` or `query`,
//!   and renders as a response;
//! - parsing is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use todo_api::error::ApiError;
use todo_api::tasks::{Body, ListQuery, fields};

fn assert_validation(error: &ApiError, place: &str) {
    let ApiError::Validation(errors) = error else {
        panic!("rejected with {error:?}, not a validation error");
    };
    assert!(!errors.is_empty(), "validation error without field errors");
    assert!(errors.iter().all(|e| e.loc.first() == Some(&place)));
    assert_eq!(error.status(), 422);
    assert_eq!(error.to_response("fuzz").status_code, 422);
}

fn body(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let full = fields(&value, Body::Create);
    let partial = fields(&value, Body::Update);
    if let Err(error) = &full {
        assert_validation(error, "body");
    }
    if let Err(error) = &partial {
        assert_validation(error, "body");
    }
    assert!(
        full.is_err() || partial.is_ok(),
        "valid with the title required but not with it optional"
    );
    if !value.is_object() {
        assert!(
            full.is_err() && partial.is_err(),
            "accepted a non-object body"
        );
    }
}

fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ListQuery::parse(&text) {
        Ok(query) => assert_eq!(ListQuery::parse(&text).ok(), Some(query)),
        Err(error) => assert_validation(&error, "query"),
    }
}

fuzz_target!(|data: &[u8]| {
    body(data);
    query(data);
});
