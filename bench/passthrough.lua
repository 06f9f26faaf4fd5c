-- wrk script: a plain GET to a path the PAR layer does not own (pass-through), for the proxy
-- mode of bench/load.sh: through par-proxy, through nginx, or straight at the upstream
-- (examples/bare_201, which answers every request 201). Every response must be 201.
--
--   wrk -t1 -c32 -d10s --latency -s bench/passthrough.lua http://127.0.0.1:PORT
--
-- done() prints the same RESULT line as push.lua.

local EXPECT = 201

-- bench/result.lua (setup, the RESULT line), found next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "result.lua")

wrk.method = "GET"
wrk.path = "/static/app.js?v=3"
wrk.headers["Accept"] = "*/*"

count_statuses(EXPECT)
