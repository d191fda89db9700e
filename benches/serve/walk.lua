-- Walks the set in a random order without repeats (per wrk thread), so a
-- run that stays under BENCH_COUNT requests never asks for a file twice:
-- every cold request is a real read from the disk.
-- Env: BENCH_PREFIX (e.g. /c/bench/cold/f), BENCH_COUNT (files), BENCH_SUFFIX.
local prefix = os.getenv("BENCH_PREFIX")
local count = tonumber(os.getenv("BENCH_COUNT"))
local suffix = os.getenv("BENCH_SUFFIX") or ".m4s"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local order = {}
for i = 1, count do order[i] = i - 1 end
for i = count, 2, -1 do
  local j = math.random(i)
  order[i], order[j] = order[j], order[i]
end
local n = 0
request = function()
  n = n % count + 1
  return wrk.format("GET", prefix .. order[n] .. suffix)
end
