-- Picks a random file of the bench set for every request.
-- Env: BENCH_PREFIX (e.g. /c/bench/big/f), BENCH_COUNT (files), BENCH_SUFFIX.
local prefix = os.getenv("BENCH_PREFIX")
local count = tonumber(os.getenv("BENCH_COUNT"))
local suffix = os.getenv("BENCH_SUFFIX") or ".m4s"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", prefix .. math.random(0, count - 1) .. suffix)
end
