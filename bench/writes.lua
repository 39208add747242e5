-- wrk script for bench/writes.py. BENCH_MODE picks the request:
--   cold        GET /r/{code} with a random code from BENCH_CODES (more codes than the cache)
--   claim       POST /r/{code}/claim on a random link from BENCH_CODES with a unique email,
--               a valid CSRF pair and consent
--   conversion  POST the recordConversion mutation (or the baseline's /conversions) with a
--               unique idempotency key and external reference per request
--   revenue      POST the recordRevenue mutation (or the baseline's /revenue): a recurring
--               charge with a unique billing id and idempotency key on a random won deal
--               (its CRM id from BENCH_CODES)
--   opportunity  POST the upsertOpportunity mutation (or the baseline's /opportunities): the
--               CRM pushing deals, each in three requests: created (stage Demo, open), stage
--               moved (Proposal), won; each deal on the next lead referral of BENCH_CODES
--               (GraphQL ids for Vouch, plain ids for the baseline), with an idempotency key
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
local thread_list = {}
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
  table.insert(thread_list, thread)
end

-- A 200 that carries an error (GraphQL's top-level errors, or a payload's non-empty
-- ``errors``; a baseline's {"error": ...}) is a failed write too: counted, and reported by
-- done() for bench/writes.py to add to the non-2xx count.
payload_errors = 0
function response(status, headers, body)
  if body and (string.find(body, '"errors":[{', 1, true) or string.find(body, '"error":', 1, true)) then
    payload_errors = payload_errors + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(thread_list) do n = n + (t:get("payload_errors") or 0) end
  io.write("Payload errors: " .. n .. "\n")
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
  elseif mode == "revenue" then
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ")
    if os.getenv("BENCH_BASELINE") == "1" then
      local body = '{"crm_id":"' .. code .. '","external_id":"in' .. unique .. '","amount":9900,"currency":"USD","occurred_at":"' .. at .. '"}'
      return wrk.format("POST", "/revenue", {
        ["Content-Type"] = "application/json", ["Idempotency-Key"] = "k" .. unique,
        ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
      }, body)
    end
    local body = '{"query":"mutation($i: RecordRevenueInput!, $k: String) { recordRevenue(input: $i, idempotencyKey: $k) { created errors { code } } }",'
      .. '"variables":{"k":"k' .. unique .. '","i":{"externalId":"in' .. unique .. '","kind":"recurring",'
      .. '"amountMinor":9900,"currency":"USD","occurredAt":"' .. at .. '","opportunityCrmId":"' .. code .. '"}}}'
    return wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
    }, body)
  elseif mode == "opportunity" then
    -- A CRM pushes one deal's changes in order, never at once: requests go round LANES deals
    -- in flight (more than wrk's connections), so a deal's next step is sent LANES requests
    -- after the one before, long after it was answered. (An earlier version sent a deal's
    -- three steps back to back, on three connections at once: they queued on the deal's and
    -- the referral's row locks, which measured lock waits, not the write.)
    local lanes = 128
    local lane = (counter - 1) % lanes
    local round = math.floor((counter - 1) / lanes)
    local deal = lane + lanes * math.floor(round / 3)
    local step = round % 3
    if deal_start == nil then deal_start = math.random(0, #codes - 1) end
    local referral = codes[(deal_start + deal) % #codes + 1]
    local crm = "D" .. run .. "-" .. tostring(thread_number) .. "-" .. deal
    local stage, status = "Demo", "open"
    if step == 1 then stage = "Proposal" elseif step == 2 then stage, status = "Won", "won" end
    if os.getenv("BENCH_BASELINE") == "1" then
      local body = '{"crm_id":"' .. crm .. '","stage":"' .. stage .. '","status":"' .. status
        .. '","amount":250000,"currency":"USD","referral_id":' .. referral .. '}'
      return wrk.format("POST", "/opportunities", {
        ["Content-Type"] = "application/json", ["Idempotency-Key"] = "k" .. unique,
        ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
      }, body)
    end
    local body = '{"query":"mutation($i: UpsertOpportunityInput!, $k: String) { upsertOpportunity(input: $i, idempotencyKey: $k) { created errors { code } } }",'
      .. '"variables":{"k":"k' .. unique .. '","i":{"crmId":"' .. crm .. '","stage":"' .. stage
      .. '","status":"' .. status .. '","amountMinor":250000,"currency":"USD","referralId":"' .. referral .. '"}}}'
    return wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
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
