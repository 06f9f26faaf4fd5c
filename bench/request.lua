-- The pushed authorization request of the load benchmark, shared by the wrk scripts that send it:
-- push.lua sends it as the form body of a push, authorize.lua as the query of a plain
-- authorization request, in the form the layer's swap hands the inner service.
--
--   local request = dofile(dir .. "request.lua")
--   request.body()         -- the 300-byte form body: a code + PKCE request of client web-app
--   request.plain_query()  -- client_id first, then the other parameters in pushed order

local request = {}

-- Every value is already in the canonical encoding (RFC 3986 unreserved bytes and %XX, space as
-- %20) that the layer writes when it rebuilds a redeemed request.
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
local CLIENT_ID = "client_id=web-app"
local BODY_LEN = 300

-- The padding parameter that brings the body to BODY_LEN bytes; the layer stores it like any
-- other parameter.
local function pad()
  local unpadded = table.concat(fields, "&") .. "&pad="
  return "pad=" .. string.rep("p", BODY_LEN - #unpadded)
end

function request.body()
  local body = table.concat(fields, "&") .. "&" .. pad()
  assert(#body == BODY_LEN, "body length")
  return body
end

-- What the inner service's query is after the layer swapped a request_uri for this request:
-- client_id, then the pushed parameters without client_id, in their pushed order.
function request.plain_query()
  local query = { CLIENT_ID }
  for _, field in ipairs(fields) do
    if field ~= CLIENT_ID then table.insert(query, field) end
  end
  table.insert(query, pad())
  return table.concat(query, "&")
end

return request
