//! The task API through HTTP: every route in both families, validation, isolation, paging.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

/// Both route families, as (collection path, user).
fn families(user: &str) -> [String; 2] {
    ["/api/tasks".to_owned(), format!("/api/{user}/tasks")]
}

#[test]
fn the_full_round_trip_works_in_both_families() {
    round_trip(&spawn_app());
}

/// Create, read, list, replace, update, toggle and delete, in both families.
pub fn round_trip(app: &TestApp) {
    for base in families("alice") {
        let reply = app.send_json("POST", &base, "alice", json!({"title": "  Buy milk ", "description": "2 litres"}));
        assert_eq!(reply.status, 201, "{base}");
        let task = reply.json();
        let id = task["id"].as_i64().unwrap();
        assert_eq!(reply.header("Location"), Some(format!("{base}/{id}").as_str()));
        assert_eq!(task["title"], "Buy milk");
        assert_eq!(task["description"], "2 litres");
        assert_eq!(task["completed"], false);
        assert_eq!(task["user_id"], "alice");
        assert_eq!(task["created_at"], task["updated_at"]);
        let stamp = task["created_at"].as_str().unwrap();
        assert!(stamp.len() == 27 && stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.', "{stamp}");

        let item = format!("{base}/{id}");
        assert_eq!(app.get(&item, "alice").json(), task);

        let list = app.get(&base, "alice");
        assert_eq!(list.status, 200);
        assert!(list.json().as_array().unwrap().contains(&task));

        let put = app.send_json("PUT", &item, "alice", json!({"title": "Buy oat milk"}));
        assert_eq!(put.status, 200);
        assert_eq!(put.json()["title"], "Buy oat milk");
        assert_eq!(put.json()["description"], "2 litres", "absent means unchanged");
        assert_ne!(put.json()["updated_at"], task["updated_at"]);

        let patch = app.send_json("PATCH", &item, "alice", json!({"description": null, "completed": true}));
        assert_eq!(patch.status, 200);
        assert_eq!(
            (patch.json()["description"].clone(), patch.json()["completed"].clone()),
            (Value::Null, json!(true))
        );

        let toggle = app.call("PATCH", &format!("{item}/complete")).auth("alice").send();
        assert_eq!(toggle.status, 200);
        assert_eq!(toggle.json()["completed"], false);
        let set = app.send_json("PATCH", &format!("{item}/complete"), "alice", json!({"completed": false}));
        assert_eq!(set.json()["completed"], false, "set, not toggled");
        let toggle = app.send_json("PATCH", &format!("{item}/complete"), "alice", json!({}));
        assert_eq!(toggle.json()["completed"], true);

        let deleted = app.call("DELETE", &item).auth("alice").send();
        assert_eq!(deleted.status, 204);
        assert!(deleted.body.is_empty());
        app.get(&item, "alice").error(404, "not_found");
        app.call("DELETE", &item).auth("alice").send().error(404, "not_found");
    }
    let rows: i64 = app.db.client().query_one("SELECT count(*) FROM tasks", &[]).unwrap().get(0);
    assert_eq!(rows, 0, "DELETE removes the row");
}

#[test]
fn the_first_write_creates_the_users_row() {
    let app = spawn_app();
    app.create("newcomer", "first");
    app.create("newcomer", "second");
    let users: i64 = app.db.client().query_one("SELECT count(*) FROM users WHERE id = 'newcomer'", &[]).unwrap().get(0);
    assert_eq!(users, 1);
}

#[test]
fn a_user_cannot_touch_another_users_task() {
    let app = spawn_app();
    let task = app.create("alice", "private");
    let id = task["id"].as_i64().unwrap();
    for base in families("bob") {
        let item = format!("{base}/{id}");
        app.get(&item, "bob").error(404, "not_found");
        app.send_json("PUT", &item, "bob", json!({"title": "mine"})).error(404, "not_found");
        app.send_json("PATCH", &item, "bob", json!({"completed": true})).error(404, "not_found");
        app.send_json("PATCH", &item, "bob", json!({})).error(404, "not_found");
        app.call("PATCH", &format!("{item}/complete")).auth("bob").send().error(404, "not_found");
        app.call("DELETE", &item).auth("bob").send().error(404, "not_found");
        assert_eq!(app.get(&base, "bob").json(), json!([]));
    }
    // Alice's path with Bob's token is forbidden, whatever the route.
    let item = format!("/api/alice/tasks/{id}");
    app.get("/api/alice/tasks", "bob").error(403, "forbidden");
    app.get(&item, "bob").error(403, "forbidden");
    app.call("DELETE", &item).auth("bob").send().error(403, "forbidden");
    app.send_json("POST", "/api/alice/tasks", "bob", json!({"title": "x"})).error(403, "forbidden");
    assert_eq!(app.get(&format!("/api/tasks/{id}"), "alice").json(), task, "unchanged");
}

#[test]
fn the_path_user_is_percent_decoded_before_it_is_compared() {
    let app = spawn_app();
    let reply = app.send_json("POST", "/api/user%40example.com/tasks", "user@example.com", json!({"title": "t"}));
    assert_eq!(reply.status, 201);
    let id = reply.json()["id"].as_i64().unwrap();
    assert_eq!(reply.header("Location"), Some(format!("/api/user%40example.com/tasks/{id}").as_str()));
    app.get("/api/a%2Fb/tasks", "a/b").json();
    app.get("/api/a%2Fb/tasks", "a").error(403, "forbidden");
}

#[test]
fn ids_that_are_not_plain_positive_int64_are_404_after_authentication() {
    let app = spawn_app();
    for id in ["0", "01", "+1", "-1", "1e3", "%31", "abc", "9223372036854775808", "99999"] {
        app.get(&format!("/api/tasks/{id}"), "alice").error(404, "not_found");
        app.get(&format!("/api/alice/tasks/{id}"), "alice").error(404, "not_found");
    }
    app.call("GET", "/api/tasks/abc").send().error(401, "unauthorized");
    app.get("/api/bob/tasks/abc", "alice").error(403, "forbidden");
}

#[test]
fn a_trailing_slash_is_ignored() {
    let app = spawn_app();
    let task = app.create("alice", "slash");
    assert_eq!(app.get(&format!("/api/tasks/{}/", task["id"]), "alice").json(), task);
    assert_eq!(app.get("/api/alice/tasks/", "alice").status, 200);
}

#[test]
fn bodies_are_checked_for_size_type_syntax_then_fields() {
    let app = spawn_app();
    let post = |content_type: Option<&str>, body: &[u8]| {
        let mut call = app.call("POST", "/api/tasks").auth("alice");
        if let Some(ct) = content_type {
            call = call.header("Content-Type", ct);
        }
        call.body(body).send()
    };
    post(Some("application/json"), b"").error(400, "invalid_json");
    post(None, b"").error(400, "invalid_json");
    post(Some("text/plain"), b"").error(400, "invalid_json");
    post(None, br#"{"title":"x"}"#).error(415, "unsupported_media_type");
    post(Some("text/plain"), br#"{"title":"x"}"#).error(415, "unsupported_media_type");
    post(Some("application/json"), b" ").error(400, "invalid_json");
    post(Some("application/json"), b"{\"title\":").error(400, "invalid_json");
    post(Some("application/json"), b"\xef\xbb\xbf{\"title\":\"x\"}").error(400, "invalid_json");
    post(Some("application/json"), b"{\"title\":\"\xff\"}").error(400, "invalid_json");
    post(Some("application/json"), br#"{"title":"\ud800"}"#).error(400, "invalid_json");
    let nested = "[".repeat(60_000);
    post(Some("application/json"), nested.as_bytes()).error(400, "invalid_json");
    assert_eq!(post(Some("application/json; charset=utf-8"), br#"{"title":"x"}"#).status, 201);
    assert_eq!(post(Some("application/vnd.api+json"), br#"{"title":"x"}"#).status, 201);

    let body = post(Some("application/json"), b"[]").error(422, "validation_error");
    assert_eq!(body["errors"][0]["loc"], json!(["body"]));
    let body = post(Some("application/json"), br#"{"title":"","description":7,"completed":"no"}"#)
        .error(422, "validation_error");
    let locs: Vec<&Value> = body["errors"].as_array().unwrap().iter().map(|e| &e["loc"]).collect();
    assert_eq!(locs, [&json!(["body", "title"]), &json!(["body", "description"]), &json!(["body", "completed"])]);
    let rows: i64 = app.db.client().query_one("SELECT count(*) FROM tasks", &[]).unwrap().get(0);
    assert_eq!(rows, 2, "bad input changes nothing");
}

#[test]
fn fields_are_validated_as_the_contract_says() {
    let app = spawn_app();
    let create = |body: Value| app.send_json("POST", "/api/tasks", "alice", body);
    let rejected = [
        json!({"title": "a\u{0}b"}),
        json!({"title": "x".repeat(201)}),
        json!({"title": "   "}),
        json!({"title": null}),
        json!({"title": "ok", "completed": null}),
        json!({"title": "ok", "description": "x".repeat(1001)}),
        json!({"title": "ok", "description": "nul\u{0}"}),
        json!({"title": "ok", "description": "bell\u{7}"}),
        json!({"description": "no title"}),
    ];
    for body in rejected {
        let reply = create(body.clone());
        assert_eq!(reply.status, 422, "{body}");
        reply.error(422, "validation_error");
    }
    let task = create(json!({"title": "\tBuy\t", "description": "", "completed": true, "id": 9, "user_id": "mallory",
        "created_at": "2000-01-01T00:00:00Z"}))
    .json();
    assert_eq!(
        (task["title"].as_str(), task["description"].as_str(), task["completed"].as_bool()),
        (Some("Buy"), Some(""), Some(true))
    );
    assert_eq!(task["user_id"], "alice");
    assert_ne!(task["created_at"], "2000-01-01T00:00:00Z");
    let long = create(json!({"title": "é".repeat(200), "description": "line\n\ttab\r\n".repeat(90)}));
    assert_eq!(long.status, 201, "limits count characters, not bytes");
}

#[test]
fn an_update_with_no_known_field_changes_nothing() {
    let app = spawn_app();
    let task = app.create("alice", "still");
    let item = format!("/api/tasks/{}", task["id"]);
    let reply = app.send_json("PATCH", &item, "alice", json!({"unknown": 1, "id": 5}));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), task, "no updated_at bump");
    app.send_json("PUT", &item, "alice", json!({"description": "no title"})).error(422, "validation_error");
    app.call("PATCH", &item).auth("alice").header("Content-Type", "application/json").send().error(400, "invalid_json");
    let same = app.send_json("PATCH", &item, "alice", json!({"title": "still"}));
    assert_ne!(same.json()["updated_at"], task["updated_at"], "a known field present bumps updated_at");
}

#[test]
fn complete_takes_no_body_an_empty_object_or_a_boolean() {
    let app = spawn_app();
    let task = app.create("alice", "flip");
    let path = format!("/api/tasks/{}/complete", task["id"]);
    let with = |ct: Option<&str>, body: &[u8]| {
        let mut call = app.call("PATCH", &path).auth("alice");
        if let Some(ct) = ct {
            call = call.header("Content-Type", ct);
        }
        call.body(body).send()
    };
    assert_eq!(with(Some("text/plain"), b"").json()["completed"], true, "empty body toggles, any type");
    assert_eq!(with(None, b"").json()["completed"], false);
    assert_eq!(with(Some("application/json"), br#"{"completed": true}"#).json()["completed"], true);
    with(Some("application/json"), br#"{"completed": "yes"}"#).error(422, "validation_error");
    with(Some("application/json"), br#"{"completed": null}"#).error(422, "validation_error");
    with(Some("application/json"), b"[true]").error(422, "validation_error");
    with(Some("text/plain"), br#"{}"#).error(415, "unsupported_media_type");
    with(Some("application/json"), b"{").error(400, "invalid_json");
}

#[test]
fn lists_filter_sort_search_and_count() {
    let app = spawn_app();
    for (title, description, completed) in [
        ("Buy milk", Some("from the 100% organic shop"), false),
        ("call mom", None, true),
        ("Pay rent", Some("before the 1st"), true),
        ("Water_plants", Some("back\\slash"), false),
    ] {
        let body = json!({"title": title, "description": description, "completed": completed});
        assert_eq!(app.send_json("POST", "/api/tasks", "alice", body).status, 201);
    }
    app.create("bob", "Buy bread");
    let titles = |query: &str| -> Vec<String> {
        let reply = app.get(&format!("/api/tasks?{query}"), "alice");
        assert_eq!(reply.status, 200, "{query}: {}", String::from_utf8_lossy(&reply.body));
        reply.json().as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(titles(""), ["Water_plants", "Pay rent", "call mom", "Buy milk"]);
    assert_eq!(titles("sort=created&order=asc"), ["Buy milk", "call mom", "Pay rent", "Water_plants"]);
    assert_eq!(titles("status=completed"), ["Pay rent", "call mom"]);
    assert_eq!(titles("status=pending&order=asc"), ["Buy milk", "Water_plants"]);
    assert_eq!(titles("q=BUY"), ["Buy milk"]);
    assert_eq!(titles("q=100%25"), ["Buy milk"], "% matches itself");
    assert_eq!(titles("q=_"), ["Water_plants"], "_ matches itself");
    assert_eq!(titles("q=%5C"), ["Water_plants"], "\\ matches itself");
    assert_eq!(titles("q=the+1st"), ["Pay rent"], "description matches, + is a space");
    assert_eq!(titles("q="), titles(""), "empty q means no filter");
    assert_eq!(titles("sort=updated&limit=1"), ["Water_plants"]);
    let reply = app.get("/api/tasks?status=pending&unknown=1", "alice");
    assert_eq!(reply.header("X-Total-Count"), Some("2"));
    for bad in [
        "status=done",
        "sort=id",
        "order=DESC",
        "limit=0",
        "limit=1001",
        "offset=-1",
        "limit=",
        "status=all&status=all",
        "q=%01",
    ] {
        let body = app.get(&format!("/api/tasks?{bad}"), "alice").error(422, "validation_error");
        let name = bad.split('=').next().unwrap();
        assert_eq!(body["errors"][0]["loc"], json!(["query", name]), "{bad}");
    }
}

#[test]
fn titles_sort_by_the_database_collation_with_ties_by_id() {
    let app = spawn_app();
    for title in ["b", "A", "a", "c", "b"] {
        app.create("alice", title);
    }
    let reply = app.get("/api/tasks?sort=title", "alice");
    let pairs: Vec<(String, i64)> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["title"].as_str().unwrap().to_owned(), t["id"].as_i64().unwrap()))
        .collect();
    let mut client = app.db.client();
    let expected: Vec<(String, i64)> = client
        .query("SELECT title, id FROM tasks ORDER BY title, id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pairs, expected);
}

#[test]
fn paging_visits_every_task_exactly_once_under_each_sort() {
    let app = spawn_app();
    // 250 tasks with colliding timestamps and titles, so ties must be broken by id.
    app.db
        .client()
        .batch_execute(
            "INSERT INTO users (id) VALUES ('pager');
             INSERT INTO tasks (user_id, title, completed, created_at, updated_at)
             SELECT 'pager', 'title ' || (i % 7), i % 3 = 0,
                    timestamptz '2026-01-01' + (i % 10) * interval '1 minute',
                    timestamptz '2026-01-02' + (i % 4) * interval '1 second'
             FROM generate_series(1, 250) AS i;",
        )
        .unwrap();
    for sort in ["created", "updated", "title"] {
        for order in ["asc", "desc"] {
            let mut seen = Vec::new();
            let mut next = Some(format!("/api/tasks?sort={sort}&order={order}&limit=30"));
            let mut pages = 0;
            while let Some(url) = next.take() {
                let reply = app.get(&url, "pager");
                assert_eq!(reply.status, 200);
                assert_eq!(reply.header("X-Total-Count"), Some("250"));
                seen.extend(reply.json().as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()));
                let link = reply.header("Link").unwrap_or_default().to_owned();
                if pages > 0 {
                    assert!(link.contains("rel=\"prev\""), "{link}");
                }
                next = link
                    .split(", ")
                    .find(|l| l.ends_with("rel=\"next\""))
                    .map(|l| l.trim_start_matches('<').split('>').next().unwrap().to_owned());
                pages += 1;
            }
            assert_eq!(pages, 9, "{sort} {order}");
            let unique: HashSet<i64> = seen.iter().copied().collect();
            assert_eq!((seen.len(), unique.len()), (250, 250), "{sort} {order}: each task exactly once");
        }
    }
    let past_the_end = app.get("/api/tasks?offset=500", "pager");
    assert_eq!(past_the_end.json(), json!([]));
    assert_eq!(past_the_end.header("X-Total-Count"), Some("250"));
    assert!(past_the_end.header("Link").unwrap().contains("offset=400>; rel=\"prev\""));
}

#[test]
fn links_are_relative_and_carry_every_filter() {
    let app = spawn_app();
    for i in 0..3 {
        app.create("alice", &format!("milk {i}"));
    }
    let reply = app.get("/api/alice/tasks?q=milk&status=pending&limit=1&offset=1", "alice");
    assert_eq!(
        reply.header("Link"),
        Some(
            "</api/alice/tasks?status=pending&sort=created&order=desc&q=milk&limit=1&offset=2>; rel=\"next\", \
             </api/alice/tasks?status=pending&sort=created&order=desc&q=milk&limit=1&offset=0>; rel=\"prev\""
        )
    );
    assert_eq!(app.get("/api/tasks", "alice").header("Link"), None, "one page: no links");
}

#[test]
fn concurrent_users_see_only_their_own_tasks_and_every_acknowledged_create_is_stored() {
    let app = spawn_app_with(&[("WORKERS", "16"), ("DB_POOL_SIZE", "8")], todo_api::http::dispatch);
    let created = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..24 {
            let (app, created) = (&app, &created);
            scope.spawn(move || {
                let user = format!("user{}", t % 6);
                for i in 0..10 {
                    let reply =
                        app.send_json("POST", "/api/tasks", &user, json!({"title": format!("{user} #{t}.{i}")}));
                    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
                    let id = reply.json()["id"].as_i64().unwrap();
                    created.lock().unwrap().push((user.clone(), id));
                    let list = app.get("/api/tasks?limit=1000", &user).json();
                    assert!(list.as_array().unwrap().iter().all(|task| task["user_id"] == user.as_str()));
                    if i % 3 == 0 {
                        let toggled = app.call("PATCH", &format!("/api/tasks/{id}/complete")).auth(&user).send();
                        assert_eq!(toggled.status, 200);
                    }
                }
            });
        }
    });
    let created = created.into_inner().unwrap();
    assert_eq!(created.len(), 240);
    let mut client = app.db.client();
    for (user, id) in &created {
        let owner: String = client.query_one("SELECT user_id FROM tasks WHERE id = $1", &[id]).unwrap().get(0);
        assert_eq!(&owner, user);
    }
    for u in 0..6 {
        let user = format!("user{u}");
        let list = app.get("/api/tasks?limit=1000", &user).json();
        assert_eq!(list.as_array().unwrap().len(), 40, "{user}");
    }
}

#[test]
fn a_big_list_reads_its_page_from_an_index_in_every_order() {
    let app = spawn_app();
    let mut client = app.db.client();
    client
        .batch_execute(
            "INSERT INTO users (id) SELECT 'big' UNION ALL SELECT 'other' || i FROM generate_series(1, 300) i;
             INSERT INTO tasks (user_id, title) SELECT 'big', 'task ' || i FROM generate_series(1, 10000) i;
             INSERT INTO tasks (user_id, title) SELECT 'other' || (i % 300 + 1), 'task ' || i FROM generate_series(1, 60000) i;
",
        )
        .unwrap();
    client.batch_execute("VACUUM ANALYZE tasks").unwrap();
    // The plan a prepared statement settles on: each order reads its page from an index, in order.
    client.batch_execute("SET plan_cache_mode = force_generic_plan").unwrap();
    let plan = |client: &mut postgres::Client, statement: &todo_api::db::Sql, arguments: &str| {
        client.batch_execute("DEALLOCATE ALL").unwrap();
        let types = "text, bool, text, bool, text, timestamptz, timestamptz, bool, text[], int8, int8";
        client.batch_execute(&format!("PREPARE list ({types}) AS {}", statement.text)).unwrap();
        let rows = client.query(&format!("EXPLAIN EXECUTE list ({arguments})"), &[]).unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
    };
    for (sort, descending, plain, _) in todo_api::db::LIST_TASKS {
        let plan = plan(&mut client, &plain, "'big', NULL, NULL, false, NULL, NULL, NULL, false, NULL, 50, 0");
        let in_order = plan.contains("Index") && !plan.contains("Seq Scan") && !plan.contains("Sort");
        // Due dates in descending order have no index of their own (README, "Tasks").
        let sorted = plan.contains("Sort") && !plan.contains("Seq Scan");
        assert!(in_order || (sort == "due_date" && descending && sorted), "{sort} (descending: {descending}):\n{plan}");
    }
    // With a tag filter, the tasks carrying the tag come from the index of users and tags.
    for (sort, descending, _, tagged) in todo_api::db::LIST_TASKS {
        let plan = plan(&mut client, &tagged, "'big', NULL, NULL, true, NULL, NULL, NULL, false, '{x}', 50, 0");
        assert!(
            plan.contains("tasks_user_tags") && !plan.contains("Seq Scan"),
            "{sort} (descending: {descending}):\n{plan}"
        );
    }
    let reply = app.get("/api/tasks?limit=50", "big");
    assert_eq!(reply.json().as_array().unwrap().len(), 50);
    assert_eq!(reply.header("X-Total-Count"), Some("10000"));
}

#[test]
fn the_operators_smoke_script_passes() {
    let app = spawn_app();
    let output = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke.sh"))
        .arg(format!("http://{}", app.addr))
        .env("BETTER_AUTH_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("all 16 steps passed"), "{stdout}");
    // The test server's limits are on (out of reach) and /metrics is served to loopback.
    assert!(stdout.contains("rate-limit         200 OK (\"default\";q=1000000;w=60;"), "{stdout}");
    assert!(stdout.contains("metrics            200 OK"), "{stdout}");
}
