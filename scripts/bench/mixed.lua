-- 70 % list, 10 % get, 10 % create, 5 % toggle (PATCH .../complete, no body), 5 % PUT.
dofile((os.getenv("BENCH_LUA_DIR") or "scripts/bench") .. "/common.lua")

function request()
  local u, r = pick_user(), math.random(100)
  if r <= 70 then
    return list_request(u)
  elseif r <= 80 then
    return get_request(u)
  elseif r <= 90 then
    return create_request(u)
  elseif r <= 95 then
    return toggle_request(u)
  else
    return put_request(u)
  end
end
