-- POST /api/tasks with a JSON body, as a random user.
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  return create_request(pick_user())
end
