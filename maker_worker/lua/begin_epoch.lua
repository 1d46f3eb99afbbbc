-- Start a new coordinator epoch and mark the job running, unless its status forbids it (a
-- `maker cancel` that landed after the coordinator read the job must not be undone).
-- KEYS[1] job hash; ARGV[1..] the statuses a job may be started from.
-- Returns the new epoch, or the job's status (a string) when it may not start.
local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  return redis.error_reply('no such job')
end
for i = 1, #ARGV do
  if ARGV[i] == current then
    redis.call('HSET', KEYS[1], 'status', 'running', 'reason', '')
    return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
  end
end
return current
