//! Health, routing, headers, CORS, body limits, panics, migrations, start-up errors.

use std::process::Command;
use std::time::Duration;

use postgres::types::Type;
use rouille::{Request, Response};
use serde_json::json;
use todo_api::App;
use todo_api::error::ApiError;
use todo_api::http::{self, Action, Route, Token};

use crate::common::*;

#[test]
fn health_is_ok_without_a_database_or_token() {
    let app = spawn_app();
    let reply = app.call("GET", "/health").send();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "ok"}));
    assert_eq!(reply.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(reply.header("Cache-Control"), None, "no-store is for /api/...");
}

#[test]
fn ready_checks_the_database() {
    let app = spawn_app();
    let reply = app.call("GET", "/health/ready").send();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "ok", "database": "ok"}));
}

#[test]
fn ready_is_503_when_the_database_is_unreachable_and_health_stays_200() {
    let mut app = spawn_app();
    // Kick the server's connections and forbid new ones: the database is gone for it.
    let mut admin = admin();
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false", app.db.name)).unwrap();
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&app.db.name])
        .unwrap();
    let started = std::time::Instant::now();
    let reply = app.call("GET", "/health/ready").send();
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "answered within the 2 s budget");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json(), json!({"status": "unavailable", "database": "unreachable"}));
    assert_eq!(app.call("GET", "/health").send().status, 200);
    let reply = app.call("GET", "/api/tasks").auth("u1").send();
    assert_eq!(reply.status, 503, "a request that needs the database");
    reply.error(503, "unavailable");
    assert!(reply.header("Retry-After").is_some());
    app.stop();
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", app.db.name)).unwrap();
}

#[test]
fn unknown_paths_are_404_and_known_paths_with_other_methods_are_405() {
    let app = spawn_app();
    for path in ["/", "/nope", "/api", "/api/tasks/1/other", "/api/%74asks", "/health/ready/x"] {
        app.call("GET", path).send().error(404, "not_found");
    }
    let cases = [
        ("POST", "/health", "GET, OPTIONS"),
        ("DELETE", "/api/tasks", "GET, POST, OPTIONS"),
        ("POST", "/api/tasks/1", "GET, PUT, PATCH, DELETE, OPTIONS"),
        ("GET", "/api/tasks/1/complete", "PATCH, OPTIONS"),
        ("PUT", "/api/u1/tasks", "GET, POST, OPTIONS"),
    ];
    for (method, path, allow) in cases {
        let reply = app.call(method, path).send();
        reply.error(405, "method_not_allowed");
        assert_eq!(reply.header("Allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn head_is_405_without_a_body_and_plain_options_lists_the_methods() {
    let app = spawn_app();
    let reply = app.call("HEAD", "/api/tasks").send();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("GET, POST, OPTIONS"));
    assert!(reply.body.is_empty());
    let reply = app.call("OPTIONS", "/api/tasks/5").send();
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("Allow"), Some("GET, PUT, PATCH, DELETE, OPTIONS"));
}

#[test]
fn request_ids_are_echoed_when_well_formed_and_replaced_otherwise() {
    let app = spawn_app();
    let reply = app.call("GET", "/nope").header("X-Request-Id", "abc.DEF_123-x").send();
    assert_eq!(reply.header("X-Request-Id"), Some("abc.DEF_123-x"));
    assert_eq!(reply.json()["request_id"], "abc.DEF_123-x");
    for bad in ["has space", "semi;colon", &"x".repeat(129), "a/b"] {
        let reply = app.call("GET", "/health").header("X-Request-Id", bad).send();
        let id = reply.header("X-Request-Id").unwrap();
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    }
    let a = app.call("GET", "/health").send();
    let b = app.call("GET", "/health").send();
    assert_ne!(a.header("X-Request-Id"), b.header("X-Request-Id"));
}

#[test]
fn api_responses_are_not_cached() {
    let app = spawn_app();
    let reply = app.call("GET", "/api/tasks").send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));
    assert_eq!(reply.header("X-Content-Type-Options"), Some("nosniff"));
}

#[test]
fn cors_preflight_from_an_allowed_origin_needs_no_token() {
    let app = spawn_app();
    let reply = app
        .call("OPTIONS", "/api/tasks/3")
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "authorization, content-type")
        .send();
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("https://app.example"));
    assert_eq!(reply.header("Access-Control-Allow-Methods"), Some("GET, PUT, PATCH, DELETE"));
    assert_eq!(reply.header("Access-Control-Allow-Headers"), Some("Authorization, Content-Type, X-Request-Id"));
    assert_eq!(reply.header("Access-Control-Max-Age"), Some("600"));
    assert_eq!(reply.headers_named("Vary"), vec!["Origin"]);
    assert_eq!(reply.header("Access-Control-Allow-Credentials"), None);
}

#[test]
fn cors_preflight_for_an_unknown_path_is_404() {
    let app = spawn_app();
    let reply = app
        .call("OPTIONS", "/api/unknown")
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .send();
    reply.error(404, "not_found");
}

#[test]
fn cors_headers_go_to_allowed_origins_only() {
    let app = spawn_app();
    let reply = app.call("GET", "/api/tasks").header("Origin", "http://localhost:3000").send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("http://localhost:3000"));
    assert_eq!(
        reply.header("Access-Control-Expose-Headers"),
        Some("X-Total-Count, Link, Location, X-Request-Id, RateLimit, RateLimit-Policy, Retry-After")
    );
    assert_eq!(reply.headers_named("Vary"), vec!["Origin"]);

    let reply = app.call("GET", "/api/tasks").header("Origin", "https://evil.example").send();
    assert_eq!(reply.header("Access-Control-Allow-Origin"), None);
    assert_eq!(reply.header("Access-Control-Expose-Headers"), None);
    assert_eq!(reply.headers_named("Vary"), vec!["Origin"], "every /api response varies by origin");

    let reply = app
        .call("OPTIONS", "/api/tasks")
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send();
    assert_eq!(reply.status, 204, "a preflight from a disallowed origin is still 204");
    assert_eq!(reply.header("Access-Control-Allow-Origin"), None);
    assert_eq!(reply.header("Access-Control-Allow-Methods"), None);
}

#[test]
fn cors_star_answers_a_literal_star() {
    let app = spawn_app_with(&[("CORS_ORIGINS", "*")], http::dispatch);
    let reply = app.call("GET", "/health").header("Origin", "https://any.example").send();
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(reply.header("Vary"), None);
}

#[test]
fn a_body_over_64_kib_is_413_and_exactly_64_kib_is_read() {
    let app = spawn_app();
    let too_big = vec![b' '; 65_537];
    let reply =
        app.call("POST", "/api/tasks").auth("u1").header("Content-Type", "application/json").body(&too_big).send();
    reply.error(413, "payload_too_large");
    // 65 KiB sent chunked, with no Content-Length to check up front.
    let mut request = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        token("u1"),
        66_560
    )
    .into_bytes();
    request.extend(vec![b' '; 66_560]);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    raw(app.addr, &request).error(413, "payload_too_large");
    // Exactly 65,536 bytes passes the size check (and is then judged as JSON).
    let mut body = br#"{"title": "padded"}"#.to_vec();
    body.resize(65_536, b' ');
    let reply = app.call("POST", "/api/tasks").auth("u1").header("Content-Type", "application/json").body(&body).send();
    assert_ne!(reply.status, 413);
}

fn panicking(
    app: &App,
    request: &Request,
    route: &Route,
    action: Action,
    token: Option<Token>,
) -> Result<Response, ApiError> {
    if request.raw_query_string() == "panic" {
        panic!("a bug in a handler");
    }
    http::dispatch(app, request, route, action, token)
}

#[test]
fn a_panicking_handler_is_a_json_500_and_the_server_keeps_serving() {
    let app = spawn_app_with(&[("WORKERS", "1")], panicking);
    for _ in 0..3 {
        let reply = app.call("GET", "/health?panic").send();
        let body = reply.error(500, "internal_error");
        assert!(!body.to_string().contains("a bug"), "the cause stays in the log");
    }
    assert_eq!(app.call("GET", "/health").send().status, 200);
}

#[test]
fn migrations_are_idempotent_and_safe_when_instances_start_at_once() {
    let db = TestDb::new(); // from the migrated template
    let mut client = db.client();
    client
        .batch_execute(
            "DROP TABLE tasks, users, schema_migrations; DROP TYPE task_priority; DROP FUNCTION task_next_due, task_tags_valid",
        )
        .unwrap();
    let url = db.url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                todo_api::db::migrate(&mut client)
            })
        })
        .collect();
    for start in starts {
        start.join().unwrap().unwrap();
    }
    todo_api::db::migrate(&mut client).unwrap();
    let applied: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).unwrap().get(0);
    assert_eq!(applied as usize, todo_api::db::MIGRATIONS.len());
    let tables: i64 =
        client.query_one("SELECT count(*) FROM pg_tables WHERE tablename IN ('users', 'tasks')", &[]).unwrap().get(0);
    assert_eq!(tables, 2);
}

#[test]
fn a_changed_migration_stops_start_up() {
    let db = TestDb::new();
    let mut client = db.client();
    client.batch_execute("UPDATE schema_migrations SET checksum = 'edited' WHERE file LIKE '%0001_init.sql'").unwrap();
    let err = todo_api::db::migrate(&mut client).unwrap_err();
    assert!(err.contains("0001_init.sql") && err.contains("changed"), "{err}");
}

/// Runs the binary with exactly these variables, in an empty directory (no `.env`).
fn run_binary(vars: &[(&str, &str)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("todo-api-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(&dir)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let url = url_of("postgres");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("BETTER_AUTH_SECRET", SECRET)], "DATABASE_URL"),
        (&[("DATABASE_URL", &url)], "BETTER_AUTH_SECRET"),
        (&[("DATABASE_URL", &url), ("BETTER_AUTH_SECRET", "too-short")], "BETTER_AUTH_SECRET"),
        (&[("DATABASE_URL", "postgres://u:hunter2@h:notaport/db"), ("BETTER_AUTH_SECRET", SECRET)], "DATABASE_URL"),
        (&[("DATABASE_URL", "mysql://h/db"), ("BETTER_AUTH_SECRET", SECRET)], "DATABASE_URL"),
        (&[("DATABASE_URL", &url), ("BETTER_AUTH_SECRET", SECRET), ("PORT", "x")], "PORT"),
    ];
    for (vars, variable) in cases {
        let (ok, stderr) = run_binary(vars);
        assert!(!ok, "{variable}: must not start");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(variable), "names {variable}: {stderr}");
        assert!(!stderr.contains("hunter2") && !stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_unreachable_database_stops_start_up_without_the_password() {
    let vars =
        [("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2"), ("BETTER_AUTH_SECRET", SECRET)];
    let (ok, stderr) = run_binary(&vars);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect to the database"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn sslmode_require_connects_over_tls() {
    let app = spawn_app_with(&[("DATABASE_URL", "{db}?sslmode=require")], http::dispatch);
    assert_eq!(app.call("GET", "/health/ready").send().status, 200);
    let tls_sessions: i64 = admin()
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND s.ssl",
            &[&app.db.name],
        )
        .unwrap()
        .get(0);
    assert!(tls_sessions >= 1, "the server's connections use TLS");
}

#[test]
fn the_healthcheck_subcommand_reports_whether_the_server_answers() {
    let mut app = spawn_app();
    let url = app.db.url();
    let port = app.addr.port().to_string();
    let check = |port: &str| {
        Command::new(env!("CARGO_BIN_EXE_todo-api"))
            .arg("healthcheck")
            .env_clear()
            .envs([("DATABASE_URL", url.as_str()), ("BETTER_AUTH_SECRET", SECRET), ("PORT", port), ("HOST", "0.0.0.0")])
            .current_dir(std::env::temp_dir())
            .status()
            .unwrap()
            .success()
    };
    assert!(check(&port));
    assert!(todo_api::health::probe(app.addr));
    app.stop();
    assert!(!check(&port), "nothing listens any more");
}

#[test]
fn neon_style_urls_with_scram_channel_binding_work() {
    let cluster = Cluster::start();
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE neon_user LOGIN PASSWORD 'a-scram-password';",
        )
        .unwrap();
    admin.batch_execute("CREATE DATABASE neondb OWNER neon_user").unwrap();
    // This role must log in with SCRAM over TLS; everything else keeps trust.
    let hba: String = admin.query_one("SHOW hba_file", &[]).unwrap().get(0);
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostssl all neon_user 127.0.0.1/32 scram-sha-256\nhost all neon_user 127.0.0.1/32 reject\n{rules}"),
    )
    .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let base = format!("postgres://neon_user:a-scram-password@127.0.0.1:{}/neondb", cluster.port);
    let url = format!("{base}?sslmode=require&channel_binding=require");
    let app = spawn_app_with(&[("DATABASE_URL", &url)], http::dispatch);
    assert_eq!(app.call("GET", "/health/ready").send().status, 200);
    assert_eq!(app.create("u1", "over SCRAM-SHA-256-PLUS")["user_id"], "u1");
    let over_tls: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'neon_user' AND s.ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(over_tls >= 1);
    drop(app);

    // Channel binding cannot be had without TLS: the client refuses rather than downgrade.
    let config = config(&base_env(&format!("{base}?sslmode=disable&channel_binding=require")));
    let err = todo_api::start(&config, http::dispatch).err().expect("refused");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("a-scram-password"), "{err}");
}

/// `auto` (the default) prepares unless a transaction pooler is in front: with PG_APP_URL set
/// (scripts/pgbouncer-check.sh) the pool goes through PgBouncer and must not prepare.
#[test]
fn prepared_statements_are_prepared_once_per_connection_unless_pooled_or_refused() {
    let through_pooler = std::env::var("PG_APP_URL").is_ok();
    for (setting, direct, expected) in
        [("false", true, 0), ("true", true, 1), ("auto", true, 1), ("auto", false, i64::from(!through_pooler))]
    {
        let db = TestDb::new();
        let mut vars = base_env(&db.url());
        if direct {
            vars.insert("DATABASE_URL".to_owned(), db.url());
        }
        vars.insert("DB_PREPARED_STATEMENTS".to_owned(), setting.to_owned());
        let pool = todo_api::db::pool(&config(&vars)).unwrap();
        let mut conn = pool.get().unwrap();
        for id in 1..=3_i64 {
            let rows = conn.query(todo_api::db::GET_TASK, &[(&id, Type::INT8), (&"alice", Type::TEXT)]).unwrap();
            assert!(rows.is_empty());
        }
        let text = todo_api::db::GET_TASK.text;
        assert!(!text.contains("$sql$"));
        let count = format!("SELECT count(*) FROM pg_prepared_statements WHERE statement = $sql${text}$sql$");
        let prepared: i64 = first_value(&conn.simple_query(&count).unwrap()).parse().unwrap();
        assert_eq!(prepared, expected, "DB_PREPARED_STATEMENTS={setting}, direct: {direct}");
        // Prepared on a session of its own, a statement is planned once, not on every execution.
        let mode = first_value(&conn.simple_query("SHOW plan_cache_mode").unwrap());
        let generic = if expected == 1 { "force_generic_plan" } else { "auto" };
        assert_eq!(mode, generic, "DB_PREPARED_STATEMENTS={setting}, direct: {direct}");
    }
}

#[test]
fn the_task_api_works_with_prepared_statements() {
    let app = spawn_app_with(&[("DB_PREPARED_STATEMENTS", "true"), ("DATABASE_URL", "{db}")], http::dispatch);
    crate::tasks::round_trip(&app);
    for i in 0..3 {
        app.create("bob", &format!("task {i}"));
    }
    let page = app.get("/api/tasks?limit=2&offset=2", "bob");
    assert_eq!(page.header("X-Total-Count"), Some("3"));
    assert_eq!(page.json().as_array().unwrap().len(), 1);
    let past_the_end = app.get("/api/tasks?limit=2&offset=10", "bob");
    assert_eq!((past_the_end.json(), past_the_end.header("X-Total-Count")), (json!([]), Some("3")));
}
