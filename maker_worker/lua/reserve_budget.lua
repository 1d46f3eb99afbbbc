-- Reserve the estimated cost of one call against the job's budget, cluster-wide.
-- KEYS[1] job hash; ARGV[1] estimated cost (micro-USD).
-- Returns 1 when reserved (or the job has no budget), 0 when the call would cross the budget.
local budget = redis.call('HGET', KEYS[1], 'budget_micro_usd')
if not budget or budget == '' then
  redis.call('HINCRBY', KEYS[1], 'spent_micro_usd', ARGV[1])
  return 1
end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent_micro_usd') or '0')
if spent + tonumber(ARGV[1]) > tonumber(budget) then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'spent_micro_usd', ARGV[1])
return 1
