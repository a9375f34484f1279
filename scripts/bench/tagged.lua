-- GET /api/tasks?tag=work&sort=due_date&limit=50 as a random seeded user.
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  return tagged_request(pick_user())
end
