-- One call's permit from a provider/model's cluster-wide limits, on the Redis server clock.
-- KEYS[1] requests TAT (ms), KEYS[2] tokens TAT (ms), KEYS[3] cool-down end (ms)
-- ARGV[1] requests per minute (0: no limit), ARGV[2] tokens per minute (0: no limit),
-- ARGV[3] tokens this call reserves.
-- GCRA: a limit's theoretical arrival time (TAT) advances by the call's cost; a call may go
-- while the requests TAT is not ahead of now and the tokens TAT is at most 1 s ahead.
-- Returns 0 when granted (both limits charged), else the milliseconds to wait before asking again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cool = tonumber(redis.call('GET', KEYS[3]) or '0')
if cool > now then
  return math.ceil(cool - now)
end
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local req_tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local tok_tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
local wait = 0
if rpm > 0 and req_tat > now then
  wait = req_tat - now
end
if tpm > 0 and tok_tat - now > 1000 then
  wait = math.max(wait, tok_tat - now - 1000)
end
if wait > 0 then
  return math.ceil(wait)
end
if rpm > 0 then
  local next_tat = req_tat + 60000 / rpm
  redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 60000)
end
if tpm > 0 then
  local next_tat = tok_tat + tokens * 60000 / tpm
  redis.call('SET', KEYS[2], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 60000)
end
return 0
