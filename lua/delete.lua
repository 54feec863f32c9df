-- delete.lua: delete one record, append its "delete" change event to the
-- namespace's log and publish it, all in one atomic step.
--
-- KEYS[1]  records hash     rm:{<ns>}:records
-- KEYS[2]  key index zset   rm:{<ns>}:keys
-- KEYS[3]  log metadata     rm:{<ns>}:meta
-- KEYS[4]  change log       rm:{<ns>}:log
--
-- ARGV[1]  namespace (already validated by the client)
-- ARGV[2]  key (already validated by the client)
-- ARGV[3]  expected current version, "" for any
-- ARGV[4]  pub/sub channel for the event
--
-- "Now" is Redis time (TIME), in milliseconds.
--
-- Reply, a flat array:
--   {0, version, seq, event_id, epoch, ts_ms, log_started}
--     deleted; version is the tombstone's version (the last version + 1)
--   {1, actual_version}  expected version did not match (0 = absent)
--   {3}                  the key is missing (nothing written)
--
-- Example:
--   redis-cli --eval lua/delete.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' , users alice '' rm:ch:users

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local namespace, key, expected, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local current = redis.call('HGET', records, key)
local version = 0
if current then
    version = tonumber(string.match(current, '^{"version":(%d+),'))
end

if expected ~= '' and tonumber(expected) ~= version then
    return {1, version}
end
if not current then
    return {3}
end

local time = redis.call('TIME')
local now = time[1] .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
version = version + 1

local epoch = redis.call('HGET', meta, 'epoch')
local log_started = 0
if not epoch then
    epoch = time[1] .. string.format('%06d', tonumber(time[2]))
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
    log_started = 1
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)

redis.call('HDEL', records, key)
redis.call('ZREM', index, key)

local id = redis.call('XADD', log, '*', 'key', key, 'op', 'delete',
    'version', version, 'seq', seq, 'ts', now)

redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"delete","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":null}')

return {0, version, seq, id, epoch, now, log_started}
