-- wrk script: GET /v1/ping (authenticate + SELECT 1): the floor.
function init(args)
  wrk.path = "/v1/ping"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SG_KEY")
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms %.3f\np99_ms %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
