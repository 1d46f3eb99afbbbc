-- Record one sample result exactly once, unless its step is already decided.
-- KEYS[1] job hash, KEYS[2] step seen-set, KEYS[3] step results stream
-- ARGV[1] step, ARGV[2] sample id, ARGV[3] result JSON
-- Returns 'recorded', 'duplicate' or 'late'.
local steps_done = tonumber(redis.call('HGET', KEYS[1], 'steps_done') or '0')
if steps_done > tonumber(ARGV[1]) then
  return 'late'
end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then
  return 'duplicate'
end
redis.call('XADD', KEYS[3], '*', 'r', ARGV[3])
return 'recorded'
