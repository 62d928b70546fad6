-- wrk script of `make bench`.
--   wrk ... -s wrk.lua URL -- BODY_FILE   POSTs BODY_FILE as JSON (select)
--   wrk ... -s wrk.lua URL                plain GET (the nginx reference)
-- Prints one machine-readable line at the end:
--   BENCH {"requests":N,"rps":R,"p50_us":U,"p99_us":U,"errors":N,...}
-- wrk counts answers >= 400 in errors.status, so a run whose select answers
-- were errors shows them here and the harness rejects it.

init = function(args)
   if args[1] ~= nil then
      local f = assert(io.open(args[1], "rb"))
      wrk.method = "POST"
      wrk.body = f:read("*a")
      f:close()
      wrk.headers["Content-Type"] = "application/json"
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'BENCH {"requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"bytes":%d,' ..
      '"errors":%d,"errors_connect":%d,"errors_read":%d,' ..
      '"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, summary.bytes,
      e.connect + e.read + e.write + e.status + e.timeout,
      e.connect, e.read, e.write, e.status, e.timeout))
end
