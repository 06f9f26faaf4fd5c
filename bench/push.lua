-- wrk script: RFC 9126 pushed authorization request, client_secret_basic, a 300-byte
-- code + PKCE form body, against POST /as/par. Every response must be 201.
--
--   wrk -t1 -c32 -d10s --latency -s bench/push.lua http://127.0.0.1:PORT -- [record=FILE] [stop_after=N]
--
-- record=FILE   append every returned request_uri to FILE (one per line), for redeem runs.
-- stop_after=N  stop sending once N responses arrived (memory mode; wrk still waits for -d).
--
-- done() prints the RESULT line of bench/result.lua; ok counts 201 responses.

local EXPECT = 201

-- bench/result.lua (setup, the RESULT line) and bench/request.lua (the request), found next to
-- this script.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or ""
dofile(dir .. "result.lua")
local request = dofile(dir .. "request.lua")

-- The request is static, so wrk sends a pre-formatted buffer and spends its CPU on I/O only.
local body = request.body()

wrk.method = "POST"
wrk.path = "/as/par"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- base64("web-app:web-app-secret")
wrk.headers["Authorization"] = "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA=="

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
  print_result(summary, latency, EXPECT)
end
