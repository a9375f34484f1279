"""Mints one HS256 token per benchmark user and writes the data files the load scripts read.

Usage: BENCH_SECRET=... python3 data.py OUT_DIR < user_ids
stdin: one line per user, "user_id|id,id,..." (its task ids). Writes OUT_DIR/data.lua (for wrk)
and OUT_DIR/data.json (for check.py).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(secret: bytes, user: str) -> str:
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": user, "iat": now, "exp": now + 10 * 365 * 86400}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def main() -> None:
    out = sys.argv[1]
    secret = os.environ["BENCH_SECRET"].encode()
    tasks = {}
    for line in sys.stdin:
        user, _, ids = line.strip().partition("|")
        if user:
            tasks[user] = [int(i) for i in ids.split(",")]
    big = "bench_big"
    users = sorted((u for u in tasks if u != big), key=lambda u: int(u.removeprefix("bench_u")))
    if len(users) != 100 or big not in tasks:
        sys.exit(f"expected 100 bench_u users and {big}, got {len(users)} and {big in tasks}")
    data = {
        "users": users,
        "tokens": [token(secret, u) for u in users],
        "tasks": [tasks[u] for u in users],
        "big": {"user": big, "token": token(secret, big), "count": len(tasks[big])},
    }
    with open(os.path.join(out, "data.json"), "w") as f:
        json.dump(data, f)

    def lua_strings(items):
        return "{" + ", ".join(json.dumps(s) for s in items) + "}"

    with open(os.path.join(out, "data.lua"), "w") as f:
        f.write("-- Benchmark users, their tokens and task ids (index i is bench_u<i>).\nreturn {\n")
        f.write(f"  users = {lua_strings(users)},\n")
        f.write(f"  tokens = {lua_strings(data['tokens'])},\n")
        f.write("  tasks = {\n")
        for ids in data["tasks"]:
            f.write("    {" + ",".join(map(str, ids)) + "},\n")
        f.write("  },\n")
        f.write(f"  big = {{user = {json.dumps(big)}, token = {json.dumps(data['big']['token'])}}},\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
