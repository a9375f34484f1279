-- GET of the URL given to wrk, without a token: the HTTP layer's ceiling (hello, /health).
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")
