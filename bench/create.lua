-- wrk script: POST /v1/bookings with a unique slot per request.
-- Each thread gets its own block of start times; requests rotate over the resources.
-- Env: SG_KEY, SG_RESOURCES (comma-separated ids), SG_CLIENT; SG_IDEMPOTENCY=1 sends a fresh
-- Idempotency-Key with every request.
local counter = 0
local resources = {}
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for id in string.gmatch(os.getenv("SG_RESOURCES"), "[^,]+") do
    table.insert(resources, id)
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SG_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

local base = os.time({year = 2040, month = 1, day = 1, hour = 0})

function request()
  counter = counter + 1
  -- 200,000 slots of 15 minutes per run (two threads of 100,000): ten runs stay before 2100.
  local slot = tonumber(os.getenv("SG_RUN") or "0") * 200000 + (thread_id or 0) * 100000 + counter
  local start = base + slot * 900
  local resource = resources[(counter % #resources) + 1]
  if os.getenv("SG_IDEMPOTENCY") == "1" then
    wrk.headers["Idempotency-Key"] = "bench-" .. slot
  end
  local body = string.format(
    '{"resource_id":"%s","client_id":"%s","start_time":"%s","end_time":"%s"}',
    resource, os.getenv("SG_CLIENT"),
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 900))
  return wrk.format(nil, "/v1/bookings", nil, body)
end

local first_error = nil
function response(status, headers, body)
  if status ~= 201 and first_error == nil then
    first_error = status .. " " .. body
    io.stderr:write(first_error .. "\n")
  end
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms %.3f\np99_ms %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
