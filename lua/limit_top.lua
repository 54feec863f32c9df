-- limit_top.lua: count one refused request in the day's top of refused
-- subjects, and keep that sorted set for the retention period.
--
-- KEYS[1]  rl:top:refused:<YYYYMMDD>   sorted set subject -> refused requests
--
-- ARGV[1]  subject
-- ARGV[2]  retention, seconds
--
-- The day comes from the Redis time that limit_hit.lua replied with. This key
-- spans slots (it holds every subject), so it is written after that script,
-- outside its atomic step.
--
-- Reply: the subject's refusals that day.
--
-- Example:
--   redis-cli --eval lua/limit_top.lua 'rl:top:refused:20261203' , alice 3024000

local refused = redis.call('ZINCRBY', KEYS[1], 1, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return refused
