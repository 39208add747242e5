-- wrk script: a different random 10-character code (code alphabet) on every request,
-- so neither the decode memo nor any cache can help.
local chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
math.randomseed(os.time())
request = function()
  local t = {}
  for i = 1, 10 do
    local r = math.random(1, #chars)
    t[i] = chars:sub(r, r)
  end
  return wrk.format("GET", "/r/" .. table.concat(t))
end
