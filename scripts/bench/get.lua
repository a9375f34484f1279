-- GET /api/tasks/{id}: one of a random user's own tasks.
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  return get_request(pick_user())
end
