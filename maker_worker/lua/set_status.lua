-- Move a job to a new status only from an allowed one, so that no writer undoes a finished
-- status it did not see (e.g. a coordinator's pause landing just after a `maker cancel`).
-- KEYS[1] job hash, KEYS[2] active-jobs set
-- ARGV[1] job id, ARGV[2] new status, ARGV[3] reason, ARGV[4] wall seconds (stored even when the
-- move is refused; '' keeps the stored value), ARGV[5] 1 when the new status is claimable (queued,
-- running), ARGV[6..] allowed current statuses.
-- Returns the job's status after the call (the new one, or the one that blocked the move).
local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  return redis.error_reply('no such job')
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'wall_s', ARGV[4])
end
local allowed = false
for i = 6, #ARGV do
  if ARGV[i] == current then
    allowed = true
  end
end
if not allowed then
  return current
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'reason', ARGV[3])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
return ARGV[2]
