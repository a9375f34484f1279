"""Checks, before anything is timed, that the requests of every scenario get correct answers.

Usage: python3 check.py BASE_URL DATA_JSON
Sends the same requests the wrk scripts send (same methods, paths, headers and bodies) and
exits non-zero with a list of problems if a status, a body's shape or its owner is wrong.
"""
import http.client
import json
import random
import re
import sys
from urllib.parse import urlsplit

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FIELDS = {
    "id": int,
    "user_id": str,
    "title": str,
    "description": (str, type(None)),
    "completed": bool,
    "priority": str,
    "tags": list,
    "due_date": (str, type(None)),
    "remind_at": (str, type(None)),
    "recurrence": (str, type(None)),
    "created_at": str,
    "updated_at": str,
}

problems = []


def request(base, method, path, token, body=None):
    """One request on a fresh connection; no header is added beyond those wrk sends."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("Authorization", "Bearer " + token)
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(raw)))
    conn.endheaders(raw)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    try:
        value = json.loads(payload) if payload else None
    except ValueError:
        value = payload[:200]
    return response.status, response, value


def expect(condition, what):
    if not condition:
        problems.append(what)
    return bool(condition)


def valid_task(task, user, what):
    if not expect(isinstance(task, dict), f"{what}: body is not an object: {task!r}"):
        return False
    ok = expect(set(task) == set(FIELDS), f"{what}: fields {sorted(task)}")
    for name, kind in FIELDS.items():
        value = task.get(name)
        ok &= expect(isinstance(value, kind) and not (kind is int and isinstance(value, bool)),
                     f"{what}: {name} = {value!r}")
    for name in ("created_at", "updated_at"):
        ok &= expect(bool(TIMESTAMP.match(str(task.get(name)))), f"{what}: {name} = {task.get(name)!r}")
    ok &= expect(task.get("user_id") == user, f"{what}: user_id {task.get('user_id')!r}, token is {user!r}")
    return ok


def check_list(base, user, token, ids, total, what, path="/api/tasks?limit=50"):
    status, response, body = request(base, "GET", path, token)
    if not expect(status == 200, f"{what}: status {status}: {body!r}"):
        return
    if not expect(isinstance(body, list) and len(body) == 50, f"{what}: not an array of 50"):
        return
    for task in body:
        valid_task(task, user, what)
        if ids is not None:
            expect(task.get("id") in ids, f"{what}: task {task.get('id')} is not one of {user}'s")
    expect(response.getheader("X-Total-Count") == str(total),
           f"{what}: X-Total-Count {response.getheader('X-Total-Count')}, expected {total}")
    expect(response.getheader("Content-Type", "").startswith("application/json"),
           f"{what}: Content-Type {response.getheader('Content-Type')}")


def main():
    base, data_file = sys.argv[1], sys.argv[2]
    with open(data_file) as f:
        data = json.load(f)
    users = list(zip(data["users"], data["tokens"], data["tasks"]))
    sample = random.sample(users, 3)

    for user, token, ids in sample:
        check_list(base, user, token, set(ids), len(ids), f"list as {user}")
        tagged = [i for i in ids if i % 2 == 0]  # seed.sql tags every even id "work"
        check_list(base, user, token, set(tagged), len(tagged), f"tagged as {user}",
                   "/api/tasks?tag=work&sort=due_date&limit=50")
        _, _, body = request(base, "GET", "/api/tasks?tag=work&sort=due_date&limit=50", token)
        dues = [t.get("due_date") for t in body or []]
        expect(all("work" in t.get("tags", []) for t in body or []), f"tagged as {user}: a task without the tag")
        expect(dues == sorted(d for d in dues if d) + [None] * dues.count(None),
               f"tagged as {user}: not by due date, undated last: {dues}")

        task_id = random.choice(ids)
        status, _, body = request(base, "GET", f"/api/tasks/{task_id}", token)
        if expect(status == 200, f"get {task_id} as {user}: status {status}: {body!r}"):
            valid_task(body, user, f"get {task_id}")
            expect(body.get("id") == task_id, f"get {task_id}: id {body.get('id')}")

        title = f"bench task {random.randrange(10**9)}"
        sent = {"title": title, "description": None, "completed": False}
        status, response, body = request(base, "POST", "/api/tasks", token, sent)
        if expect(status == 201, f"create as {user}: status {status}: {body!r}"):
            valid_task(body, user, "create")
            expect((body.get("title"), body.get("description"), body.get("completed"))
                   == (title, None, False), f"create: stored {body!r}")
            expect(response.getheader("Location") == f"/api/tasks/{body.get('id')}",
                   f"create: Location {response.getheader('Location')}")

        task_id = random.choice(ids)
        _, _, before = request(base, "GET", f"/api/tasks/{task_id}", token)
        status, _, body = request(base, "PATCH", f"/api/tasks/{task_id}/complete", token)
        if expect(status == 200, f"toggle {task_id} as {user}: status {status}: {body!r}"):
            valid_task(body, user, f"toggle {task_id}")
            expect(isinstance(before, dict) and body.get("completed") == (not before.get("completed")),
                   f"toggle {task_id}: completed {before!r} -> {body!r}")

        title = f"renamed {random.randrange(10**9)}"
        status, _, body = request(base, "PUT", f"/api/tasks/{task_id}", token, {"title": title})
        if expect(status == 200, f"put {task_id} as {user}: status {status}: {body!r}"):
            valid_task(body, user, f"put {task_id}")
            expect(body.get("title") == title and body.get("id") == task_id, f"put {task_id}: {body!r}")

    # Another user's task is not found, and the big user's list is its own.
    (a, token_a, _), (b, _, ids_b) = sample[0], sample[1]
    status, _, body = request(base, "GET", f"/api/tasks/{ids_b[0]}", token_a)
    expect(status == 404, f"{a} reading {b}'s task {ids_b[0]}: status {status}")
    big = data["big"]
    check_list(base, big["user"], big["token"], None, big["count"], f"list as {big['user']}")

    if problems:
        print("correctness check FAILED:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print("correctness check passed: list, tagged, get, create, toggle, put, big, cross-user 404")


if __name__ == "__main__":
    main()
