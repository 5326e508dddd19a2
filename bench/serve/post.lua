-- wrk script: POST the body read from $WRK_BODY to the URL, and print one JSON line
-- (prefixed WRK_JSON) with the counts and latency percentiles when the run is done.
local path = os.getenv("WRK_BODY")
local file = assert(io.open(path, "rb"), "cannot read WRK_BODY=" .. tostring(path))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
