-- The summary every wrk script of bench/load.sh ends with: a human line when something other
-- than the expected status came back, and one machine line
--   RESULT requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. ok=.. bad=.. errors=.. codes=201:n,...
-- where ok counts the expected status and bad every other status or socket error.
--
-- Loaded with dofile() by the scripts next to it, which count statuses in a global `codes` table
-- per thread (read back through wrk's thread:get()). `extra` is appended to the RESULT line.

threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function print_result(summary, latency, expect, extra)
  local all = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do
      all[status] = (all[status] or 0) + n
    end
  end
  local ok, bad, list = 0, 0, {}
  for status, n in pairs(all) do
    if status == expect then ok = ok + n else bad = bad + n end
    table.insert(list, status .. ":" .. n)
  end
  table.sort(list)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local rps = summary.requests / (summary.duration / 1e6)
  if bad > 0 or errors > 0 then
    io.write(string.format("UNEXPECTED: %d responses other than %d, %d socket errors (%s)\n",
      bad, expect, errors, table.concat(list, " ")))
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.0f p50_us=%d p99_us=%d ok=%d bad=%d errors=%d codes=%s%s\n",
    summary.requests, summary.duration, rps, latency:percentile(50), latency:percentile(99),
    ok, bad + errors, errors, table.concat(list, ","), extra or ""))
end

-- For a script that only counts statuses: the `codes` table, response() and done().
function count_statuses(expect)
  codes = {}
  function response(status, headers, body)
    codes[status] = (codes[status] or 0) + 1
  end
  function done(summary, latency, requests)
    print_result(summary, latency, expect)
  end
end
