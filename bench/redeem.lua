-- wrk script: redeem pre-pushed request_uris at the authorization endpoint, each exactly once.
--
--   wrk -t1 -c32 -d10s --latency -s bench/redeem.lua http://127.0.0.1:PORT -- handles=FILE
--
-- FILE holds one request_uri per line (written by `push.lua record=FILE`). Each request reads
-- the next line, so no handle is ever sent twice; with -tN thread i takes lines i, i+N, ...
-- When the file runs out the script sends a request with a handle that was never issued
-- (so the server answers an error, counted as bad) and reports EXHAUSTED: the run is then
-- invalid and needs more pre-pushed handles, never a re-use of old ones.
--
-- done() prints one machine line:
--   RESULT requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. ok=.. bad=.. errors=.. codes=.. used=.. exhausted=..
-- where ok counts 303 responses.

local EXPECT = 303
local PREFIX = "/as/authorize?client_id=web-app&request_uri="

-- bench/result.lua (the RESULT line, the global `threads`), found next to this script; the
-- setup() below replaces its own.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "result.lua")

local counter = 0

-- All setup() calls happen before any thread starts, so each call can tell every thread so far
-- the current thread count; the last call leaves the final count everywhere.
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
  for _, t in ipairs(threads) do t:set("nthreads", counter) end
end

codes = {}
used = 0
exhausted = 0
local file

-- RFC 3986 unreserved characters stay, everything else in the URN is percent-encoded.
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function init(args)
  local path
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "handles" then path = v
    else error("redeem.lua: unknown argument " .. a) end
  end
  file = assert(io.open(assert(path, "redeem.lua: handles=FILE is required"), "r"))
  -- Skip to this thread's first line.
  for _ = 1, id do file:read("*l") end
end

function request()
  local line = file:read("*l")
  -- Skip the other threads' lines.
  for _ = 2, nthreads do file:read("*l") end
  if line == nil or line == "" then
    exhausted = exhausted + 1
    line = "urn:ietf:params:oauth:request_uri:never-issued-handles-exhausted"
  else
    used = used + 1
  end
  return wrk.format("GET", PREFIX .. encode(line))
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total_used, total_exhausted = 0, 0
  for _, t in ipairs(threads) do
    total_used = total_used + t:get("used")
    total_exhausted = total_exhausted + t:get("exhausted")
  end
  if total_exhausted > 0 then
    io.write(string.format("EXHAUSTED: ran out of handles after %d; push more first\n", total_used))
  end
  print_result(summary, latency, EXPECT,
    string.format(" used=%d exhausted=%d", total_used, total_exhausted))
end
