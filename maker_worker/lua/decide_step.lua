-- Append a decided step to the ledger and advance the job, atomically and once.
-- KEYS[1] job hash, KEYS[2] ledger list, KEYS[3] step results stream, KEYS[4] step seen-set
-- ARGV[1] step, ARGV[2] ledger entry JSON, ARGV[3] next state JSON, ARGV[4] move JSON,
-- ARGV[5] epoch of the deciding coordinator, ARGV[6] samples in the step, ARGV[7] the stream id
-- of the last result the coordinator read, then pairs of (counter field, increment).
-- Returns 1 when appended, 0 when another coordinator epoch owns the job, -1 when the job's
-- steps_done is not this step (the caller must re-read the job record).
local step = tonumber(ARGV[1])
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[5] then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'steps_done') or '0') ~= step then
  return -1
end
if redis.call('LLEN', KEYS[2]) ~= step then
  return redis.error_reply('ledger length does not match steps_done')
end
-- Results recorded after the coordinator's last read were paid for too: they count as late.
-- Decoded before any write, so a bad entry fails the script with nothing changed.
local late, late_in, late_out = 0, 0, 0
for _, item in ipairs(redis.call('XRANGE', KEYS[3], '(' .. ARGV[7], '+')) do
  local result = cjson.decode(item[2][2])
  late = late + 1
  late_in = late_in + (tonumber(result['tokens_in']) or 0)
  late_out = late_out + (tonumber(result['tokens_out']) or 0)
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'steps_done', step + 1, 'state', ARGV[3], 'previous_move', ARGV[4])
local most = tonumber(redis.call('HGET', KEYS[1], 'max_samples_in_a_step') or '0')
if tonumber(ARGV[6]) > most then
  redis.call('HSET', KEYS[1], 'max_samples_in_a_step', ARGV[6])
end
for i = 8, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
if late > 0 then
  redis.call('HINCRBY', KEYS[1], 'samples', late)
  redis.call('HINCRBY', KEYS[1], 'late_samples', late)
  redis.call('HINCRBY', KEYS[1], 'tokens_in', string.format('%d', late_in))
  redis.call('HINCRBY', KEYS[1], 'tokens_out', string.format('%d', late_out))
end
-- The step's inbox and seen-set go now: later results for it are answered 'late' from steps_done.
redis.call('DEL', KEYS[3], KEYS[4])
return 1
