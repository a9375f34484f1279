//! Priority, tags, due dates, reminders and recurrence (API.md, "Task fields"): bodies, lists,
//! the next occurrence of a recurring task, reminders, and the migration that added them.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use todo_api::wire::{parse_timestamp, rfc3339};

use crate::common::*;

const FIELDS: [&str; 5] = ["priority", "tags", "due_date", "remind_at", "recurrence"];

fn text(time: SystemTime) -> String {
    rfc3339(time, &mut [0; 27]).unwrap().to_owned()
}

fn instant(value: &Value) -> SystemTime {
    parse_timestamp(value.as_str().unwrap_or_else(|| panic!("{value} is not a timestamp"))).unwrap()
}

fn create(app: &TestApp, user: &str, body: Value) -> Value {
    let reply = app.send_json("POST", "/api/tasks", user, body);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

/// The ids of a list reply, in order.
fn ids(reply: &Reply) -> Vec<i64> {
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json().as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect()
}

/// The `(loc, type)` of each error of a 422.
fn invalid(reply: &Reply) -> Vec<(String, String)> {
    let body = reply.error(422, "validation_error");
    let errors = body["errors"].as_array().unwrap();
    errors.iter().map(|e| (e["loc"].as_array().unwrap().last().unwrap().to_string(), e["type"].to_string())).collect()
}

#[test]
fn new_fields_have_defaults_are_normalised_and_appear_in_every_response() {
    let app = spawn_app();
    let plain = app.create("alice", "Plain");
    assert_eq!(
        FIELDS.map(|f| plain[f].clone()),
        [json!("medium"), json!([]), Value::Null, Value::Null, Value::Null],
        "defaults"
    );
    let full = create(
        &app,
        "alice",
        json!({"title": "Pay rent", "priority": "high", "tags": ["  Home ", "FINANCE", "home", "Ünïcode"],
               "due_date": "2027-01-31", "remind_at": "2027-01-30T18:30:00.5+02:00", "recurrence": "monthly"}),
    );
    assert_eq!(full["priority"], "high");
    assert_eq!(full["tags"], json!(["finance", "home", "ünïcode"]), "trimmed, lower-cased, unique, sorted");
    assert_eq!(full["due_date"], "2027-01-31T00:00:00.000000Z", "a date is its midnight in UTC");
    assert_eq!(full["remind_at"], "2027-01-30T16:30:00.500000Z", "returned in UTC");
    assert_eq!(full["recurrence"], "monthly");
    let id = full["id"].as_i64().unwrap();

    // Every response that carries a task carries all five.
    for base in ["/api/tasks".to_owned(), "/api/alice/tasks".to_owned()] {
        let item = format!("{base}/{id}");
        let replies = [
            app.get(&item, "alice"),
            app.send_json("PATCH", &item, "alice", json!({"title": "Pay the rent"})),
            app.send_json("PUT", &item, "alice", json!({"title": "Pay rent"})),
        ];
        for reply in replies {
            assert_eq!(reply.status, 200);
            let task = reply.json();
            assert_eq!(FIELDS.map(|f| task[f].clone()), FIELDS.map(|f| full[f].clone()), "absent means unchanged");
        }
        let list = app.get(&base, "alice").json();
        assert!(list.as_array().unwrap().iter().all(|t| FIELDS.iter().all(|f| t.get(f).is_some())), "{list}");
    }

    // null clears, [] clears the tags; PUT leaves the absent ones alone.
    let item = format!("/api/tasks/{id}");
    let cleared = app.send_json("PATCH", &item, "alice", json!({"recurrence": null, "remind_at": null, "tags": []}));
    assert_eq!(cleared.status, 200);
    let cleared = cleared.json();
    assert_eq!((cleared["recurrence"].clone(), cleared["remind_at"].clone()), (Value::Null, Value::Null));
    assert_eq!((cleared["tags"].clone(), cleared["priority"].clone()), (json!([]), json!("high")));
    let put =
        app.send_json("PUT", &item, "alice", json!({"title": "Rent", "due_date": null, "priority": "low"})).json();
    assert_eq!((put["due_date"].clone(), put["priority"].clone()), (Value::Null, json!("low")));
    assert_ne!(put["updated_at"], cleared["updated_at"], "a change bumps updated_at");
}

#[test]
fn every_bad_new_field_is_reported_and_nothing_changes() {
    let app = spawn_app();
    let bad = json!({"title": "", "priority": "urgent", "tags": "work", "due_date": "tomorrow",
                     "remind_at": 1700000000, "recurrence": "hourly"});
    let errors = invalid(&app.send_json("POST", "/api/tasks", "alice", bad));
    let expected = [
        ("title", "string_length"),
        ("priority", "enum"),
        ("tags", "list_type"),
        ("due_date", "datetime"),
        ("remind_at", "datetime"),
        ("recurrence", "enum"),
    ];
    assert_eq!(errors, expected.map(|(l, t)| (format!("\"{l}\""), format!("\"{t}\""))).to_vec());

    let cases = [
        (json!({"title": "t", "priority": null}), "priority", "enum"),
        (json!({"title": "t", "priority": "HIGH"}), "priority", "enum"),
        (json!({"title": "t", "tags": null}), "tags", "list_type"),
        (json!({"title": "t", "tags": ["ok", 5]}), "tags", "tag"),
        (json!({"title": "t", "tags": ["   "]}), "tags", "tag"),
        (json!({"title": "t", "tags": ["x".repeat(51)]}), "tags", "tag"),
        (json!({"title": "t", "tags": ["a\u{7}b"]}), "tags", "tag"),
        (json!({"title": "t", "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()}), "tags", "too_long"),
        (json!({"title": "t", "due_date": "2026-02-30"}), "due_date", "datetime"),
        (json!({"title": "t", "due_date": "2026-01-08T10:00:00"}), "due_date", "datetime"),
        (json!({"title": "t", "remind_at": "2026-01-08 10:00:00Z"}), "remind_at", "datetime"),
        (json!({"title": "t", "recurrence": "daily"}), "recurrence", "due_date_required"),
        (json!({"title": "t", "recurrence": "daily", "due_date": null}), "recurrence", "due_date_required"),
        (json!({"title": "t", "recurrence": "Daily", "due_date": "2027-01-01"}), "recurrence", "enum"),
    ];
    for (body, loc, kind) in cases {
        let reply = app.send_json("POST", "/api/tasks", "alice", body.clone());
        assert_eq!(invalid(&reply), vec![(format!("\"{loc}\""), format!("\"{kind}\""))], "{body}");
    }
    // 20 tags (after duplicates are dropped) and 50-character tags are fine.
    let mut many: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    many.push("T0".to_owned());
    assert_eq!(create(&app, "alice", json!({"title": "t", "tags": many}))["tags"].as_array().unwrap().len(), 20);
    create(&app, "alice", json!({"title": "t", "tags": ["x".repeat(50)]}));
    assert_eq!(app.get("/api/tasks", "alice").header("X-Total-Count"), Some("2"), "no bad body created a task");

    // A recurring task cannot lose its due date, nor a task without one gain a recurrence.
    let recurring = create(&app, "alice", json!({"title": "r", "due_date": "2027-01-01", "recurrence": "weekly"}));
    let plain = app.create("alice", "p");
    let recurring_item = format!("/api/tasks/{}", recurring["id"]);
    let plain_item = format!("/api/tasks/{}", plain["id"]);
    for (method, item, body) in [
        ("PATCH", &recurring_item, json!({"due_date": null})),
        ("PUT", &recurring_item, json!({"title": "r", "due_date": null})),
        ("PATCH", &plain_item, json!({"recurrence": "daily"})),
        ("PUT", &plain_item, json!({"title": "p", "recurrence": "yearly"})),
    ] {
        let reply = app.send_json(method, item, "alice", body.clone());
        assert_eq!(invalid(&reply), vec![("\"recurrence\"".to_owned(), "\"due_date_required\"".to_owned())], "{body}");
    }
    assert_eq!(app.get(&recurring_item, "alice").json(), recurring, "unchanged");
    assert_eq!(app.get(&plain_item, "alice").json(), plain, "unchanged");
    // Clearing both at once is fine; so is a missing task's 404 before the constraint.
    let both = app.send_json("PATCH", &recurring_item, "alice", json!({"due_date": null, "recurrence": null}));
    assert_eq!(both.status, 200);
    app.send_json("PATCH", "/api/tasks/999999", "alice", json!({"recurrence": "daily"})).error(404, "not_found");
}

#[test]
fn lists_filter_by_priority_tags_and_due_dates_and_sort_by_priority_and_due_date() {
    let app = spawn_app();
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let spec = [
        // title, priority, tags, due, completed
        ("a", "high", vec!["work"], Some(now - 2 * day), false),
        ("b", "low", vec!["work", "home"], Some(now + day), false),
        ("c", "medium", vec!["home"], None, false),
        ("d", "high", vec![], Some(now - day), true),
        ("e", "low", vec!["Work", "urgent"], Some(now + 3 * day), false),
        ("f", "medium", vec![], None, false),
    ];
    let mut id = std::collections::HashMap::new();
    for (title, priority, tags, due, completed) in &spec {
        let body = json!({"title": title, "priority": priority, "tags": tags,
                          "due_date": due.map(text), "completed": completed});
        id.insert(*title, create(&app, "alice", body)["id"].as_i64().unwrap());
    }
    app.create("bob", "bob's"); // never in alice's lists
    let titles = |reply: &Reply| -> Vec<String> {
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        reply.json().as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
    };
    let list = |query: &str| app.get(&format!("/api/tasks?{query}"), "alice");
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("priority=high&sort=title".into(), vec!["a", "d"]),
        ("tag=work&sort=title".into(), vec!["a", "b", "e"]),
        ("tag=WORK&tag=home&sort=title".into(), vec!["b"]),
        ("tag=%20Home%20&tag=home&sort=title".into(), vec!["b", "c"]),
        ("tag=nothing".into(), vec![]),
        (format!("due_after={}&sort=title", text(now)), vec!["b", "e"]),
        (format!("due_before={}&sort=title", text(now)), vec!["a", "d"]),
        (format!("due_after={}&due_before={}&sort=title", text(now - day), text(now + 2 * day)), vec!["b", "d"]),
        ("overdue=true&sort=title".into(), vec!["a"]),
        ("overdue=false&sort=title".into(), vec!["a", "b", "c", "d", "e", "f"]),
        ("overdue=true&status=completed".into(), vec![]),
        ("tag=work&priority=low&sort=title&order=desc".into(), vec!["e", "b"]),
        ("sort=priority".into(), vec!["d", "a", "f", "c", "e", "b"]),
        ("sort=priority&order=asc".into(), vec!["b", "e", "c", "f", "a", "d"]),
        ("sort=due_date".into(), vec!["a", "d", "b", "e", "c", "f"]),
        ("sort=due_date&order=desc".into(), vec!["e", "b", "d", "a", "f", "c"]),
        ("sort=due_date&tag=work".into(), vec!["a", "b", "e"]),
        ("sort=due_date&order=desc&tag=home".into(), vec!["b", "c"]),
        ("sort=priority&tag=work&q=A".into(), vec!["a"]),
    ];
    for (query, expected) in cases {
        let reply = list(&query);
        assert_eq!(titles(&reply), expected, "{query}");
        assert_eq!(reply.header("X-Total-Count"), Some(expected.len().to_string().as_str()), "{query}");
    }
    // The family with the user in the path filters the same.
    assert_eq!(titles(&app.get("/api/alice/tasks?tag=home&sort=title", "alice")), ["b", "c"]);

    // Pages of a filtered, sorted list visit each match once; their links carry every filter.
    let mut seen = Vec::new();
    let mut next = Some("/api/tasks?tag=work&sort=due_date&limit=1".to_owned());
    while let Some(url) = next.take() {
        let reply = app.get(&url, "alice");
        seen.extend(ids(&reply));
        let link = reply.header("Link").and_then(|link| link.split(", ").find(|l| l.ends_with("rel=\"next\"")));
        next = link.map(|l| l[1..l.find('>').unwrap()].to_owned());
    }
    assert_eq!(seen, [id["a"], id["b"], id["e"]]);
    let past_the_end = list(
        "tag=Work&tag=urgent&tag=work&due_after=2000-01-01&overdue=false&priority=low&q=e&sort=due_date&limit=1&offset=1",
    );
    assert_eq!((ids(&past_the_end), past_the_end.header("X-Total-Count")), (vec![], Some("1")));
    let prev = "</api/tasks?status=all&sort=due_date&order=asc&q=e&priority=low&tag=work&tag=urgent\
                &due_after=2000-01-01T00%3A00%3A00.000000Z&limit=1&offset=0>; rel=\"prev\"";
    assert_eq!(past_the_end.header("Link"), Some(prev));
    let overdue = list("overdue=true&due_before=2100-01-01&limit=1&offset=1");
    let link = overdue.header("Link").unwrap();
    assert!(link.contains("&due_before=2100-01-01T00%3A00%3A00.000000Z&overdue=true&limit=1&offset=0>"), "{link}");

    // Bad values are 422, each reported.
    for (query, loc) in [
        ("priority=urgent", "priority"),
        ("priority=", "priority"),
        ("priority=high&priority=low", "priority"),
        ("tag=", "tag"),
        ("tag=%07", "tag"),
        ("due_before=tomorrow", "due_before"),
        ("due_after=2026-13-01", "due_after"),
        ("overdue=yes", "overdue"),
        ("sort=due", "sort"),
    ] {
        let errors = invalid(&list(query));
        assert_eq!(errors.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), [format!("\"{loc}\"")], "{query}");
    }
    assert_eq!(invalid(&list("priority=x&tag=&overdue=1")).len(), 3);
}

/// Completes `item` by each of the routes that can, in turn; returns the reply.
fn complete(app: &TestApp, item: &str, how: usize) -> Reply {
    match how % 3 {
        0 => app.call("PATCH", &format!("{item}/complete")).auth("alice").send(),
        1 => app.send_json("PATCH", item, "alice", json!({"completed": true})),
        _ => app.send_json("PUT", item, "alice", json!({"title": "Water the plants", "completed": true})),
    }
}

/// The next occurrence named by a completion's `Link`, in the family of the request.
fn next_occurrence(app: &TestApp, reply: &Reply, base: &str) -> Value {
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let link = reply.header("Link").unwrap_or_else(|| panic!("no Link: {}", String::from_utf8_lossy(&reply.body)));
    let path = link.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next-occurrence\"")).unwrap();
    assert!(path.starts_with(&format!("{base}/")), "{link}");
    let next = app.get(path, "alice");
    assert_eq!(next.status, 200);
    next.json()
}

#[test]
fn completing_a_recurring_task_creates_its_next_occurrence_on_the_calendar() {
    let app = spawn_app();
    // Due dates in the future: each next occurrence is one period after the one completed,
    // counted from the first due date of the series.
    let chains = [
        ("monthly", "2031-01-31T09:00:00Z", vec!["2031-02-28", "2031-03-31", "2031-04-30", "2031-05-31"]),
        ("monthly", "2031-12-31T09:00:00Z", vec!["2032-01-31", "2032-02-29", "2032-03-31"]),
        ("monthly", "2031-01-29T09:00:00Z", vec!["2031-02-28", "2031-03-29"]),
        ("yearly", "2032-02-29T09:00:00Z", vec!["2033-02-28", "2034-02-28", "2035-02-28", "2036-02-29"]),
        ("weekly", "2031-12-29T09:00:00Z", vec!["2032-01-05", "2032-01-12"]),
        ("daily", "2032-02-28T09:00:00Z", vec!["2032-02-29", "2032-03-01"]),
    ];
    let mut how = 0;
    for (recurrence, first, dates) in chains {
        let base = if how % 2 == 0 { "/api/tasks" } else { "/api/alice/tasks" };
        let mut task = create(
            &app,
            "alice",
            json!({"title": "Water the plants", "description": "balcony", "priority": "high", "tags": ["home"],
                   "due_date": first, "remind_at": parse_timestamp(first).map(|t| text(t - Duration::from_secs(3600))),
                   "recurrence": recurrence}),
        );
        for date in dates {
            let item = format!("{base}/{}", task["id"]);
            let reply = complete(&app, &item, how);
            how += 1;
            assert_eq!(reply.json()["completed"], true);
            let next = next_occurrence(&app, &reply, base);
            assert_eq!(next["due_date"], format!("{date}T09:00:00.000000Z"), "{recurrence} after {}", task["due_date"]);
            assert_eq!(next["remind_at"], format!("{date}T08:00:00.000000Z"), "the reminder moves with it");
            for same in ["title", "description", "priority", "tags", "recurrence", "user_id"] {
                assert_eq!(next[same], task[same], "{same}");
            }
            assert_eq!(next["completed"], false);
            assert_ne!(next["id"], task["id"]);
            task = next;
        }
    }

    // Overdue: the next due date is the first one after the completion, on the series' day.
    let now = SystemTime::now();
    let late =
        create(&app, "alice", json!({"title": "Pay", "due_date": "2020-01-31T12:00:00Z", "recurrence": "monthly"}));
    let reply = complete(&app, &format!("/api/tasks/{}", late["id"]), 0);
    let due = next_occurrence(&app, &reply, "/api/tasks")["due_date"].clone();
    let (due_text, due) = (due.as_str().unwrap().to_owned(), instant(&due));
    assert!(due > now && due < now + Duration::from_secs(32 * 86_400), "{due_text}");
    let day: u32 = due_text[8..10].parse().unwrap();
    let next_day = text(due + Duration::from_secs(86_400));
    assert!(day == 31 || &next_day[8..10] == "01", "the 31st, or the month's last day: {due_text}");
    assert!(due_text.ends_with("T12:00:00.000000Z"));
    let daily =
        create(&app, "alice", json!({"title": "Walk", "due_date": "2020-01-01T06:30:00Z", "recurrence": "daily"}));
    let reply = complete(&app, &format!("/api/tasks/{}", daily["id"]), 1);
    let due = instant(&next_occurrence(&app, &reply, "/api/tasks")["due_date"]);
    assert!(due > now && due <= now + Duration::from_secs(86_400), "within a day of now");
}

#[test]
fn a_recurring_task_makes_one_next_occurrence_however_it_is_completed() {
    let app = spawn_app();
    let count = || app.get("/api/tasks", "alice").header("X-Total-Count").unwrap().parse::<usize>().unwrap();
    let task = create(&app, "alice", json!({"title": "Gym", "due_date": "2031-05-01", "recurrence": "weekly"}));
    let item = format!("/api/tasks/{}", task["id"]);
    assert!(complete(&app, &item, 1).header("Link").is_some());
    assert_eq!(count(), 2);
    // Completing it again, or un-completing it, creates nothing.
    for body in [json!({"completed": true}), json!({"title": "Gym!", "completed": true}), json!({"completed": false})] {
        let reply = app.send_json("PATCH", &item, "alice", body.clone());
        assert_eq!((reply.status, reply.header("Link")), (200, None), "{body}");
    }
    let set = app.send_json("PATCH", &format!("{item}/complete"), "alice", json!({"completed": false}));
    assert_eq!(set.header("Link"), None);
    assert_eq!(count(), 2);
    // Completed, un-completed, completed again (a checkbox clicked three times): one next
    // occurrence. Another series due the same day is its own.
    let swim = create(&app, "alice", json!({"title": "Swim", "due_date": "2031-05-01", "recurrence": "weekly"}));
    for click in 1..=5 {
        let reply = complete(&app, &format!("/api/tasks/{}", swim["id"]), 0);
        assert_eq!(reply.json()["completed"], click % 2 == 1);
        assert_eq!(reply.header("Link").is_some(), click == 1, "click {click}");
    }
    assert_eq!(count(), 4, "Swim, and its one next occurrence");
    // A task that is not recurring, or is created completed, has no next occurrence.
    let plain = create(&app, "alice", json!({"title": "Once", "due_date": "2031-05-01"}));
    assert_eq!(complete(&app, &format!("/api/tasks/{}", plain["id"]), 0).header("Link"), None);
    create(&app, "alice", json!({"title": "Done", "due_date": "2031-05-01", "recurrence": "daily", "completed": true}));
    assert_eq!(count(), 6);
    // A series that would run past the year 9999 ends.
    let last = create(&app, "alice", json!({"title": "Far", "due_date": "9999-06-01", "recurrence": "yearly"}));
    let reply = complete(&app, &format!("/api/tasks/{}", last["id"]), 2);
    assert_eq!((reply.status, reply.header("Link")), (200, None));
    assert_eq!(count(), 7);
    // Another user's recurring task cannot be completed through this one's token.
    let theirs = create(&app, "bob", json!({"title": "Bob's", "due_date": "2031-05-01", "recurrence": "daily"}));
    complete(&app, &format!("/api/tasks/{}", theirs["id"]), 0).error(404, "not_found");
    assert_eq!(app.get("/api/tasks", "bob").header("X-Total-Count"), Some("1"));
}

#[test]
fn requests_completing_a_recurring_task_at_once_make_one_next_occurrence() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "12"), ("WORKERS", "16")], todo_api::http::dispatch);
    let task = create(&app, "alice", json!({"title": "Race", "due_date": "2031-05-01", "recurrence": "daily"}));
    let item = format!("/api/tasks/{}", task["id"]);
    // Hold the row while the requests arrive, so that they all meet at it.
    let mut client = app.db.client();
    let mut lock = client.transaction().unwrap();
    lock.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", &[&task["id"].as_i64().unwrap()]).unwrap();
    let links: Vec<Option<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (app, item) = (&app, &item);
                scope.spawn(move || {
                    let reply = complete(app, item, i % 2 + 1);
                    assert_eq!(reply.status, 200);
                    reply.header("Link").map(str::to_owned)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        lock.commit().unwrap();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(links.iter().flatten().count(), 1, "{links:?}");
    assert_eq!(app.get("/api/tasks", "alice").header("X-Total-Count"), Some("2"));
}

#[test]
fn reminders_list_the_due_pending_ones_oldest_first() {
    let app = spawn_app();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let at = |hours_ago: u32| text(now - hour * hours_ago);
    let mut expected = Vec::new();
    for (title, remind, completed) in [
        ("three hours ago", Some(at(3)), false),
        ("an hour ago", Some(at(1)), false),
        ("also three hours ago", Some(at(3)), false),
        ("done", Some(at(2)), true),
        ("in an hour", Some(text(now + hour)), false),
        ("none", None, false),
    ] {
        let task = create(&app, "alice", json!({"title": title, "remind_at": remind, "completed": completed}));
        if title.contains("ago") {
            expected.push((remind.unwrap(), task["id"].as_i64().unwrap()));
        }
    }
    create(&app, "bob", json!({"title": "bob's", "remind_at": at(5)}));
    expected.sort();
    let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();
    for base in ["/api/tasks/reminders", "/api/alice/tasks/reminders", "/api/tasks/reminders/"] {
        let reply = app.get(base, "alice");
        assert_eq!(ids(&reply), expected, "{base}");
        assert_eq!(reply.header("X-Total-Count"), Some("3"));
    }
    let before = app.get(&format!("/api/tasks/reminders?before={}", at(2).replace(':', "%3A")), "alice");
    assert_eq!(ids(&before), expected[..2]);
    let later = app.get(&format!("/api/tasks/reminders?before={}", text(now + 2 * hour)), "alice");
    assert_eq!(ids(&later).len(), 4);
    assert_eq!(ids(&app.get("/api/tasks/reminders?before=2000-01-01", "alice")), Vec::<i64>::new());

    // Pages carry the instant they were read with.
    let first = app.get("/api/tasks/reminders?limit=2", "alice");
    assert_eq!(ids(&first), expected[..2]);
    let link = first.header("Link").unwrap();
    let next = &link[1..link.find('>').unwrap()];
    assert!(next.starts_with("/api/tasks/reminders?before=") && next.ends_with("&limit=2&offset=2"), "{link}");
    app.create("alice", "unrelated");
    assert_eq!(ids(&app.get(next, "alice")), expected[2..]);

    for query in ["before=soon", "before=", "limit=0", "before=2026-01-01&before=2026-01-02"] {
        invalid(&app.get(&format!("/api/tasks/reminders?{query}"), "alice"));
    }
    app.call("GET", "/api/tasks/reminders").send().error(401, "unauthorized");
    app.get("/api/bob/tasks/reminders", "alice").error(403, "forbidden");
    app.send_json("POST", "/api/tasks/reminders", "alice", json!({"title": "x"})).error(405, "method_not_allowed");
}

#[test]
fn the_fields_migration_keeps_old_rows_and_the_previous_versions_statements_working() {
    let db = TestDb::new();
    let mut client = db.client();
    // Back to the schema the previous version served, with its rows.
    client
        .batch_execute(
            "DROP TABLE tasks, users, schema_migrations; DROP TYPE task_priority; DROP FUNCTION task_next_due, task_tags_valid;",
        )
        .unwrap();
    let first = &todo_api::db::MIGRATIONS[..1];
    client.batch_execute(first[0].text).unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS schema_migrations (file text PRIMARY KEY, checksum text NOT NULL,
                                                           applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (file, checksum)
             VALUES ('{}', encode(sha256(convert_to($body${}$body$, 'UTF8')), 'hex'));
             INSERT INTO users (id) VALUES ('old');
             INSERT INTO tasks (user_id, title, description, completed)
             SELECT 'old', 'old task ' || i, NULL, i % 2 = 0 FROM generate_series(1, 200) i;",
            first[0].file, first[0].text
        ))
        .unwrap();
    // The previous version's statements, prepared before the migration as its connections had
    // them, keep working while it runs and after.
    let previous = [
        "INSERT INTO tasks (user_id, title, description, completed) VALUES ($1, $2, NULL, false)
         RETURNING id, user_id, title, description, completed, created_at, updated_at",
        "SELECT id, user_id, title, description, completed, created_at, updated_at,
                (SELECT count(*) FROM tasks WHERE user_id = $1) AS total
         FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50",
        "UPDATE tasks SET completed = NOT completed, updated_at = now() WHERE id = $2 AND user_id = $1
         RETURNING id, user_id, title, description, completed, created_at, updated_at",
    ];
    let url = db.url();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let served = std::thread::scope(|scope| {
        let old_server = scope.spawn(|| {
            let mut old = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let statements: Vec<_> = previous.iter().map(|sql| old.prepare(sql).unwrap()).collect();
            let mut served = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || served < 50 {
                let title = format!("written by the old version {served}");
                old.query(&statements[0], &[&"old", &title]).unwrap();
                assert_eq!(old.query(&statements[1], &[&"old"]).unwrap().len(), 50);
                old.query(&statements[2], &[&"old", &1_i64]).unwrap();
                served += 1;
            }
            served
        });
        std::thread::sleep(Duration::from_millis(100));
        todo_api::db::migrate(&mut client).unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        old_server.join().unwrap()
    });
    assert!(served >= 50);
    let rows = client
        .query("SELECT count(*) FROM tasks WHERE priority = 'medium' AND tags = '{}' AND due_date IS NULL", &[])
        .unwrap();
    let total: i64 = client.query_one("SELECT count(*) FROM tasks", &[]).unwrap().get(0);
    assert_eq!(rows[0].get::<_, i64>(0), total, "every old row has the defaults");
    assert_eq!(total, 200 + served as i64);
}
