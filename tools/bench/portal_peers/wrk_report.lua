-- wrk script for tools/bench/portal.py: send the Android probe's Host header, and when the
-- run ends print its figures as one JSON line after a marker the benchmark looks for.
wrk.headers["Host"] = "connectivitycheck.gstatic.com"

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'portal-bench-wrk {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, ' ..
    '"timeouts": %d, "latency_mean_us": %.1f, "latency_p50_us": %.1f, ' ..
    '"latency_p99_us": %.1f, "latency_max_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
