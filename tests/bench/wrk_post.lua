-- POST /requests for wrk (tests/bench/bench_api.py). The token comes from EVE_BENCH_TOKEN.
-- done() prints one line, WRK_JSON {...}, that the benchmark parses: counts, connection
-- errors by kind, non-2xx/3xx answers, and latency percentiles in microseconds.
wrk.method = "POST"
wrk.body = '{"workerType": "general", "prompt": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("EVE_BENCH_TOKEN") or "")

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
        '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
        summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
        latency:percentile(50), latency:percentile(99), latency.max))
end
