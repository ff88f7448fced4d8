-- wrk script for bench/run.py: one fixed request per scenario, a one-line JSON summary at the end.
-- BENCH_METHOD: GET or POST; BENCH_BODY_FILE: the request body (POST). Latency is wrk's, from
-- writing the request to the end of the response, so for a stream it is the full-stream time.
local body_file = os.getenv("BENCH_BODY_FILE")
wrk.method = os.getenv("BENCH_METHOD") or "GET"
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
