-- Every request from a different client address (X-Forwarded-For from the
-- trusted loopback proxy), so every answer is a fresh prefix lookup.
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", "/v1/steer?title=bench", { ["X-Forwarded-For"] = ip })
end
