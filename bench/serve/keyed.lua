-- wrk script: POST the body read from $WRK_BODY with every "__KEY__" in it replaced by a
-- fresh number per request (so a sticky router sees a new key each time), and print one
-- JSON line (prefixed WRK_JSON) with the counts and latency percentiles when done.
local path = os.getenv("WRK_BODY")
local file = assert(io.open(path, "rb"), "cannot read WRK_BODY=" .. tostring(path))
local template = file:read("*a")
file:close()
local head, tail = template:match("^(.-)__KEY__(.*)$")
assert(head, "WRK_BODY has no __KEY__ placeholder")
local counter = 0
local headers = {["Content-Type"] = "application/json"}

request = function()
  counter = counter + 1
  return wrk.format("POST", nil, headers, head .. "k" .. counter .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
