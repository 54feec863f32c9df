-- list.lua: one page of a namespace's records, in key order.
--
-- KEYS[1]  key index zset   rm:{<ns>}:keys
-- KEYS[2]  records hash     rm:{<ns>}:records
--
-- ARGV[1]  exclusive lower bound: the last key of the previous page, "" to start
-- ARGV[2]  page size (1..1000, checked by the client)
--
-- Reply: {more, key1, record1, key2, record2, ...}; more is 1 when records
-- follow this page. Records are the stored record JSON.
--
-- Example:
--   redis-cli --eval lua/list.lua 'rm:{users}:keys' 'rm:{users}:records' , '' 10

local index, records = KEYS[1], KEYS[2]
local after, limit = ARGV[1], tonumber(ARGV[2])

local low = '-'
if after ~= '' then
    low = '(' .. after
end

-- One extra key tells whether another page follows.
local keys = redis.call('ZRANGEBYLEX', index, low, '+', 'LIMIT', 0, limit + 1)
local more = 0
if #keys > limit then
    more = 1
    keys[#keys] = nil
end

local reply = {more}
if #keys == 0 then
    return reply
end
local values = redis.call('HMGET', records, unpack(keys))
for i = 1, #keys do
    reply[#reply + 1] = keys[i]
    reply[#reply + 1] = values[i]
end
return reply
