-- Shared by the scenario scripts (loaded with dofile): the seeded users with their tokens and
-- task ids ($BENCH_DATA, default target/bench/data.lua), a per-thread random seed, the
-- requests, and done(), which prints one machine-readable line.

local data = dofile(os.getenv("BENCH_DATA") or "target/bench/data.lua")

auth = {}
for i, token in ipairs(data.tokens) do
  auth[i] = "Bearer " .. token
end
big_auth = "Bearer " .. data.big.token
local tasks = data.tasks

-- setup() runs in the main state once per thread; init() in each thread's own state.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0) * 7919)
  math.random(); math.random()
end

function pick_user()
  return math.random(#auth)
end

local function pick_task(u)
  local ids = tasks[u]
  return ids[math.random(#ids)]
end

-- wrk.format sets Content-Length in the headers table it is given, so each request gets its own.
function list_request(u)
  return wrk.format("GET", "/api/tasks?limit=50", { Authorization = auth[u] })
end

-- The tagged scenario: a tag filter (half of a user's tasks) sorted by due date.
function tagged_request(u)
  return wrk.format("GET", "/api/tasks?tag=work&sort=due_date&limit=50", { Authorization = auth[u] })
end

function big_request()
  return wrk.format("GET", "/api/tasks?limit=50", { Authorization = big_auth })
end

function get_request(u)
  return wrk.format("GET", "/api/tasks/" .. pick_task(u), { Authorization = auth[u] })
end

function create_request(u)
  local body = string.format('{"title":"bench task %d","description":null,"completed":false}',
                             math.random(1000000000))
  return wrk.format("POST", "/api/tasks",
                    { Authorization = auth[u], ["Content-Type"] = "application/json" }, body)
end

-- No body: the toggle.
function toggle_request(u)
  return wrk.format("PATCH", "/api/tasks/" .. pick_task(u) .. "/complete", { Authorization = auth[u] })
end

function put_request(u)
  local body = string.format('{"title":"renamed %d"}', math.random(1000000000))
  return wrk.format("PUT", "/api/tasks/" .. pick_task(u),
                    { Authorization = auth[u], ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d"
      .. " connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout))
end
