-- limit_policy.lua: replace a stored rate-limit policy in one atomic step, so
-- a reader sees the old or the new policy whole, never a mix or nothing.
--
-- KEYS[1]  policy hash   rl:policy:<name>   operation -> limits notation
--
-- ARGV     operation, limits, operation, limits, ... (none: delete the policy)
--
-- Reply: the number of operations now stored.
--
-- Example:
--   redis-cli --eval lua/limit_policy.lua 'rl:policy:api' , \
--     '*' 'fixed_window:1000/day' read 'token_bucket:10/s,burst=50'

redis.call('DEL', KEYS[1])
if #ARGV > 0 then
    redis.call('HSET', KEYS[1], unpack(ARGV))
end
return #ARGV / 2
