-- wrk script for bench/writes.py. BENCH_MODE picks the request:
--   cold        GET /r/{code} with a random code from BENCH_CODES (more codes than the cache)
--   claim       POST /r/{code}/claim on a random link from BENCH_CODES with a unique email,
--               a valid CSRF pair and consent
--   conversion  POST the recordConversion mutation (or the baseline's /conversions) with a
--               unique idempotency key and external reference per request
local mode = os.getenv("BENCH_MODE")
local codes = {}
for line in io.lines(os.getenv("BENCH_CODES")) do codes[#codes + 1] = line end
local counter = 0
-- Unique per wrk run (bench/writes.py sets BENCH_RUN for each) and per thread: emails,
-- idempotency keys and references must never repeat across rounds or between Vouch and its
-- baseline, or a later run would measure replays and already-claimed addresses. (An earlier
-- version drew the run's id from math.random before seeding it, so every run drew the same.)
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
math.randomseed(os.time())

request = function()
  counter = counter + 1
  local code = codes[math.random(1, #codes)]
  local unique = run .. "-" .. tostring(thread_number) .. "-" .. counter
  if mode == "cold" then
    return wrk.format("GET", "/r/" .. code)
  elseif mode == "claim" then
    local body = "email=friend" .. unique .. "%40example.org&consent=yes&csrf=" .. os.getenv("BENCH_CSRF")
    return wrk.format("POST", "/r/" .. code .. "/claim", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = "vouch_csrf=" .. os.getenv("BENCH_CSRF_COOKIE"),
    }, body)
  elseif os.getenv("BENCH_BASELINE") == "1" then
    local body = '{"code":"' .. code .. '","ref":"r' .. unique .. '","amount":1999,"currency":"USD"}'
    return wrk.format("POST", "/conversions", {
      ["Content-Type"] = "application/json", ["Idempotency-Key"] = "k" .. unique,
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
    }, body)
  else
    local body = '{"query":"mutation($i: RecordConversionInput!) { recordConversion(input: $i) { errors { code } } }",'
      .. '"variables":{"i":{"idempotencyKey":"k' .. unique .. '","redemptionCode":"' .. code
      .. '","kind":"PURCHASE","externalRef":"r' .. unique .. '","amountMinor":1999,"currency":"USD"}}}'
    return wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
    }, body)
  end
end
