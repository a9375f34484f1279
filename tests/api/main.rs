//! Integration tests: the real server, over HTTP, on a fresh PostgreSQL database each.

mod common;
mod foundation;
mod tasks;
