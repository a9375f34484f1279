//! Integration tests: the real server, over HTTP, on a fresh PostgreSQL database each.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step fails the test

mod auth;
mod common;
mod connections;
mod faults;
mod foundation;
mod jwks;
mod limits;
mod metrics;
mod outage;
mod task_fields;
mod tasks;
mod text;
mod tls;
