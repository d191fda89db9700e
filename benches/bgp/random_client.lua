-- Every request from a different client inside the announced table
-- (X-Forwarded-For from the trusted loopback proxy): IPv4 1.0.0.0–15.255.255.255
-- (inside the 1M /24s from 1.0.0.0), one in six IPv6 inside 2a00:0::/48…2a00:2:ffff::/48.
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local n = 0
request = function()
  n = n + 1
  local ip
  if n % 6 == 0 then
    ip = string.format("2a00:%x:%x::1", math.random(0, 2), math.random(0, 65535))
  else
    ip = math.random(1, 15) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  end
  return wrk.format("GET", "/v1/steer?title=bench", { ["X-Forwarded-For"] = ip })
end
