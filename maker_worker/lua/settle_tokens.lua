-- Correct a token reservation to the tokens a call really used (usually a refund).
-- KEYS[1] tokens TAT (ms); ARGV[1] tokens per minute, ARGV[2] real minus reserved tokens.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat <= now then
  return 0
end
local next_tat = math.max(now, tat + tonumber(ARGV[2]) * 60000 / tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 60000)
return 1
