-- Record one sample result exactly once, unless its step is already decided.
-- KEYS[1] job hash, KEYS[2] step seen-set, KEYS[3] step results stream
-- ARGV[1] step, ARGV[2] sample id, ARGV[3] result JSON, ARGV[4] tokens in, ARGV[5] tokens out
-- Returns 'recorded', 'duplicate' or 'late'. A late sample was still paid for: it is added to the
-- job's samples and tokens (and late_samples) here, as no coordinator will read it.
local steps_done = tonumber(redis.call('HGET', KEYS[1], 'steps_done') or '0')
if steps_done > tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'samples', 1)
  redis.call('HINCRBY', KEYS[1], 'late_samples', 1)
  redis.call('HINCRBY', KEYS[1], 'tokens_in', ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'tokens_out', ARGV[5])
  return 'late'
end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then
  return 'duplicate'
end
redis.call('XADD', KEYS[3], '*', 'r', ARGV[3])
return 'recorded'
