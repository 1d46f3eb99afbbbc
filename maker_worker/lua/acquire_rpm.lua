-- GCRA requests-per-minute limiter on the Redis server clock.
-- KEYS[1] limiter key; ARGV[1] requests per minute, ARGV[2] burst (requests).
-- Returns 0 when a permit is granted, else the milliseconds to wait before asking again.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval_ms = 60000 / tonumber(ARGV[1])
local burst_ms = interval_ms * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_ms then
  tat = now_ms
end
local allowed_at = tat + interval_ms - burst_ms
if allowed_at > now_ms then
  return math.ceil(allowed_at - now_ms)
end
local new_tat = tat + interval_ms
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now_ms) + 1000)
return 0
