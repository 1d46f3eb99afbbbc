-- Extend a lease only if the caller still holds it.
-- KEYS[1] lease key; ARGV[1] owner token, ARGV[2] lease length (ms).
-- Returns 1 when renewed, 0 when the lease is held by another owner or has lapsed.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
