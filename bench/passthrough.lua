-- wrk script: a plain GET to a path the PAR layer does not own (pass-through), for the proxy
-- mode of bench/load.sh: through par-proxy, through nginx, or straight at the upstream
-- (examples/bare_201, which answers every request 201). Every response must be 201.
--
--   wrk -t1 -c32 -d10s --latency -s bench/passthrough.lua http://127.0.0.1:PORT [-- stop_after=N]
--
-- done() prints the same RESULT line as push.lua.

local EXPECT = 201

-- bench/result.lua (setup, the RESULT line), found next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "result.lua")

wrk.method = "GET"
wrk.path = "/static/app.js?v=3"
wrk.headers["Accept"] = "*/*"

count_statuses(EXPECT)

-- stop_after=N: stop once N responses arrived (the callgrind count of bench/load.sh proxy).
local stop_after
local responses = 0
local count = response

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "stop_after" then
      stop_after = tonumber(v)
    else
      error("passthrough.lua: unknown argument " .. a)
    end
  end
end

function response(status, headers, body)
  count(status, headers, body)
  responses = responses + 1
  if stop_after and responses >= stop_after then
    wrk.thread:stop()
  end
end
