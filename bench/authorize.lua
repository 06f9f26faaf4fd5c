-- wrk script: a plain authorization request, GET /as/authorize with the parameters that
-- push.lua pushes, in the query exactly as the layer's swap writes them for the inner service
-- (client_id first, the canonical encoding). par_server's layer passes a request without a
-- request_uri through to its inner authorization endpoint, which answers 303 (--inner redirect).
-- Against redeem.lua (the same inner handler, reached through the swap of a pushed request), the
-- difference of the two runs is the swap's own cost. Every response must be 303.
--
--   wrk -t1 -c32 -d10s --latency -s bench/authorize.lua http://127.0.0.1:PORT
--
-- done() prints the RESULT line of bench/result.lua; ok counts 303 responses.

local EXPECT = 303

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or ""
dofile(dir .. "result.lua")
local request = dofile(dir .. "request.lua")

wrk.method = "GET"
wrk.path = "/as/authorize?" .. request.plain_query()

count_statuses(EXPECT)
