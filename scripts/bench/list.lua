-- GET /api/tasks?limit=50 as a random seeded user.
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  return list_request(pick_user())
end
