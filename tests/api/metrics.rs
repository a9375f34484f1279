//! `/metrics`, read by the Prometheus client library's own text parser (Python's
//! `prometheus_client.parser`; scripts/test.sh provides it as `TEST_PYTHON`), so the format is
//! proven rather than assumed; and who may read it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use todo_api::http::dispatch;

use crate::common::*;

/// The families and samples of a metrics page, as the parser reads them: `(types, samples)`
/// with samples as `[name, {label: value}, value]`.
fn parse(page: &str) -> (Value, Vec<Value>) {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
types, samples = {}, []
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    samples += [[s.name, s.labels, s.value] for s in family.samples]
print(json.dumps({"types": types, "samples": samples}))
"#;
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test.sh sets TEST_PYTHON)"));
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused the page: {}\n{page}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    (parsed["types"].clone(), parsed["samples"].as_array().unwrap().clone())
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Value> =
        samples.iter().filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v)).collect();
    assert_eq!(matching.len(), 1, "one sample {name} {labels:?}: {matching:?}");
    matching[0][2].as_f64().unwrap()
}

#[test]
fn metrics_count_requests_refusals_limits_and_rejections_in_prometheus_format() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", "60"), ("RATE_LIMIT_BURST", "3")], dispatch);
    app.create("u1", "first");
    assert_eq!(app.get("/api/tasks", "u1").status, 200);
    assert_eq!(app.get("/api/u1/tasks", "u1").status, 200);
    assert_eq!(app.get("/api/u1/tasks/1", "u2").status, 403);
    app.get("/api/tasks", "u1").error(429, "rate_limited");
    app.call("GET", "/nowhere").send().error(404, "not_found");
    app.call("GET", "/api/tasks").header("Authorization", "Bearer x.y.z").send().error(401, "unauthorized");
    app.call("GET", "/api/tasks").send().error(401, "unauthorized");
    let expired = sign(&serde_json::json!({"sub": "u3", "exp": now() - 3600}), SECRET);
    app.call("GET", "/api/tasks")
        .header("Authorization", &format!("Bearer {expired}"))
        .send()
        .error(401, "unauthorized");
    raw(app.addr, b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n").error(400, "bad_request");
    let long = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "a".repeat(20_000));
    raw(app.addr, long.as_bytes()).error(431, "headers_too_large");
    let _idle = std::net::TcpStream::connect(app.addr).unwrap(); // an open connection

    let reply = app.call("GET", "/metrics").send();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let page = String::from_utf8(reply.body).unwrap();
    let (types, samples) = parse(&page);

    assert_eq!(types["todo_api_requests"], "counter", "{types}");
    assert_eq!(types["todo_api_request_duration_seconds"], "histogram");
    assert_eq!(types["todo_api_open_connections"], "gauge");
    let requests = |route, method, status| {
        value(&samples, "todo_api_requests_total", &[("route", route), ("method", method), ("status", status)])
    };
    assert_eq!(requests("/api/tasks", "POST", "2xx"), 1.0);
    assert_eq!(requests("/api/tasks", "GET", "2xx"), 1.0);
    assert_eq!(requests("/api/tasks", "GET", "4xx"), 4.0, "429 and three 401s");
    assert_eq!(requests("/api/{user_id}/tasks", "GET", "2xx"), 1.0);
    assert_eq!(requests("/api/{user_id}/tasks/{id}", "GET", "4xx"), 1.0);
    assert_eq!(requests("other", "GET", "4xx"), 1.0, "unrouted paths share one template");
    assert!(!page.contains("/nowhere"), "no series named after what a client sent");

    // Histograms: cumulative buckets ending in +Inf, which equals the count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| s[0] == "todo_api_request_duration_seconds_bucket" && s[1]["route"] == "/api/tasks")
        .map(|s| s[2].as_f64().unwrap())
        .collect();
    assert!(buckets.len() > 5 && buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = value(&samples, "todo_api_request_duration_seconds_count", &[("route", "/api/tasks")]);
    assert_eq!((buckets.last().copied(), count), (Some(6.0), 6.0));
    assert!(value(&samples, "todo_api_request_duration_seconds_sum", &[("route", "/api/tasks")]) > 0.0);

    assert_eq!(value(&samples, "todo_api_transport_refusals_total", &[("status", "400")]), 1.0);
    assert_eq!(value(&samples, "todo_api_transport_refusals_total", &[("status", "431")]), 1.0);
    assert_eq!(value(&samples, "todo_api_rate_limited_total", &[]), 1.0);
    let rejected = |kind| value(&samples, "todo_api_token_rejections_total", &[("kind", kind)]);
    assert_eq!((rejected("malformed"), rejected("missing"), rejected("expired")), (1.0, 1.0, 1.0));
    assert_eq!(rejected("bad_signature"), 0.0);
    assert!(value(&samples, "todo_api_open_connections", &[]) >= 2.0, "this request's and the idle one");
    assert_eq!(value(&samples, "todo_api_db_pool_size", &[]), 4.0);
    let (open, idle) =
        (value(&samples, "todo_api_db_pool_connections", &[]), value(&samples, "todo_api_db_pool_idle", &[]));
    assert!(open >= 1.0 && idle <= open, "{open} {idle}");
    assert_eq!(value(&samples, "todo_api_db_pool_waiting", &[]), 0.0);
    assert_eq!(value(&samples, "todo_api_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // The page itself is counted on the next one.
    let (_, samples) = parse(&String::from_utf8(app.call("GET", "/metrics").send().body).unwrap());
    assert_eq!(requests_of(&samples, "/metrics"), 1.0);
}

fn requests_of(samples: &[Value], route: &str) -> f64 {
    value(samples, "todo_api_requests_total", &[("route", route), ("method", "GET"), ("status", "2xx")])
}

#[test]
fn metrics_are_served_only_when_on_and_only_to_allowed_addresses() {
    let off = spawn_app_with(&[("METRICS", "false")], dispatch);
    off.call("GET", "/metrics").send().error(404, "not_found");

    let elsewhere = spawn_app_with(&[("METRICS_ALLOW", "10.0.0.0/8")], dispatch);
    elsewhere.call("GET", "/metrics").send().error(404, "not_found");

    // Behind a trusted proxy the client is the forwarded address, not the proxy's loopback.
    let proxied = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1")], dispatch);
    let from = |forwarded: &str| proxied.call("GET", "/metrics").header("X-Forwarded-For", forwarded).send();
    from("203.0.113.7").error(404, "not_found");
    assert_eq!(from("127.0.0.1").status, 200);
    assert_eq!(proxied.call("GET", "/metrics").send().status, 200, "the proxy host itself");
    // Not limited, and never asks for a token.
    assert_eq!(proxied.call("GET", "/metrics").header("Authorization", "Bearer junk").send().status, 200);
}
