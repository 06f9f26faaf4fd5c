-- wrk script: RFC 9126 pushed authorization request, client_secret_basic, a 300-byte
-- code + PKCE form body, against POST /as/par. Every response must be 201.
--
--   wrk -t1 -c32 -d10s --latency -s bench/push.lua http://127.0.0.1:PORT -- [record=FILE] [stop_after=N]
--
-- record=FILE   append every returned request_uri to FILE (one per line), for redeem runs.
-- stop_after=N  stop sending once N responses arrived (memory mode; wrk still waits for -d).
--
-- done() prints a human summary and one machine line:
--   RESULT requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. ok=.. bad=.. errors=.. codes=201:n,503:n
-- where ok counts 201 responses and bad every other status or socket error.

local EXPECT = 201

-- The request is static, so wrk sends a pre-formatted buffer and spends its CPU on I/O only.
local fields = {
  "response_type=code",
  "client_id=web-app",
  "redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb",
  "scope=openid%20profile%20email",
  "state=af0ifjsldkj-Qm9vZ2xlU3RhdGVWYWx1ZQ",
  "nonce=n-0S6_WzA2Mj-bmV3Tm9uY2VWYWx1ZQ",
  -- S256 of the verifier "x" x 43, so a follow-up token exchange would be possible.
  "code_challenge=zAscLGbzu5_RoIHGJrob72L2-WRBpDvhUmhSN3asJqE",
  "code_challenge_method=S256",
}
local BODY_LEN = 300
local body = table.concat(fields, "&") .. "&pad="
body = body .. string.rep("p", BODY_LEN - #body)
assert(#body == BODY_LEN, "body length")

wrk.method = "POST"
wrk.path = "/as/par"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- base64("web-app:web-app-secret")
wrk.headers["Authorization"] = "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA=="

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua environment).
codes = {}
responses = 0
local record, stop_after

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "record" then
      -- Threads append to one file; lines are short and written whole, so they do not tear.
      record = assert(io.open(v, "a"))
      record:setvbuf("full")
    elseif k == "stop_after" then
      stop_after = tonumber(v)
    else
      error("push.lua: unknown argument " .. a)
    end
  end
end

function response(status, headers, body)
  responses = responses + 1
  codes[status] = (codes[status] or 0) + 1
  if record and status == EXPECT then
    local uri = body:match('"request_uri"%s*:%s*"([^"]+)"')
    if uri then
      record:write(uri, "\n")
    end
    -- Flush regularly: wrk exits without closing thread environments.
    if responses % 1024 == 0 then record:flush() end
  end
  if stop_after and responses >= stop_after then
    if record then record:flush() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do
      all[status] = (all[status] or 0) + n
    end
  end
  local ok, bad, list = 0, 0, {}
  for status, n in pairs(all) do
    if status == EXPECT then ok = ok + n else bad = bad + n end
    table.insert(list, status .. ":" .. n)
  end
  table.sort(list)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local rps = summary.requests / (summary.duration / 1e6)
  if bad > 0 or errors > 0 then
    io.write(string.format("UNEXPECTED: %d responses other than %d, %d socket errors (%s)\n",
      bad, EXPECT, errors, table.concat(list, " ")))
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.0f p50_us=%d p99_us=%d ok=%d bad=%d errors=%d codes=%s\n",
    summary.requests, summary.duration, rps, latency:percentile(50), latency:percentile(99),
    ok, bad + errors, errors, table.concat(list, ",")))
end
