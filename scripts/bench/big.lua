-- GET /api/tasks?limit=50 as bench_big (10,000 tasks).
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  return big_request()
end
