-- put.lua: create or update one record, append its change event to the
-- namespace's log and publish it, all in one atomic step.
--
-- KEYS[1]  records hash     rm:{<ns>}:records  field <key> -> record JSON
-- KEYS[2]  key index zset   rm:{<ns>}:keys     every live key, score 0
-- KEYS[3]  log metadata     rm:{<ns>}:meta     epoch, seq
-- KEYS[4]  change log       rm:{<ns>}:log      stream of change events
--
-- ARGV[1]  namespace (already validated by the client)
-- ARGV[2]  key (already validated by the client)
-- ARGV[3]  mode: "put" (create or update), "create" or "update"
-- ARGV[4]  value, serialised JSON (stored and published verbatim)
-- ARGV[5]  expected current version, "" for any; 0 means "must not exist"
-- ARGV[6]  pub/sub channel for the event
--
-- "Now" is Redis time (TIME), in milliseconds; no client clock is used.
--
-- Reply, a flat array:
--   {0, version, created_ms, updated_ms, seq, event_id, epoch, log_started}
--     success; log_started is 1 when this write began a new log epoch
--   {1, actual_version}  expected version did not match (0 = absent)
--   {2, actual_version}  mode "create" and the key exists
--   {3}                  mode "update" and the key is missing
-- A refusal writes nothing.
--
-- Example:
--   redis-cli --eval lua/put.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' , users alice put '{"name":"Alice"}' '' \
--     rm:ch:users

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local namespace, key, mode = ARGV[1], ARGV[2], ARGV[3]
local value, expected, channel = ARGV[4], ARGV[5], ARGV[6]

local current = redis.call('HGET', records, key)
local version, created = 0, nil
if current then
    local v, c = string.match(current, '^{"version":(%d+),"created":(%d+),')
    version, created = tonumber(v), c
end

if expected ~= '' and tonumber(expected) ~= version then
    return {1, version}
end
if mode == 'create' and current then
    return {2, version}
end
if mode == 'update' and not current then
    return {3}
end

local time = redis.call('TIME')
local now = time[1] .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
created = created or now
version = version + 1
local op = current and 'update' or 'create'

local epoch = redis.call('HGET', meta, 'epoch')
local log_started = 0
if not epoch then
    -- The log's metadata is missing (new namespace, flush, eviction): start
    -- a new epoch so every cursor into an older log is known to be stale.
    epoch = time[1] .. string.format('%06d', tonumber(time[2]))
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
    log_started = 1
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)

redis.call('HSET', records, key, '{"version":' .. version .. ',"created":' .. created
    .. ',"updated":' .. now .. ',"value":' .. value .. '}')
if op == 'create' then
    redis.call('ZADD', index, 0, key)
end

local id = redis.call('XADD', log, '*', 'key', key, 'op', op, 'version', version,
    'seq', seq, 'ts', now, 'value', value)

-- Namespace and key are restricted to characters that need no JSON escaping.
redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"' .. op .. '","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":' .. value .. '}')

return {0, version, created, now, seq, id, epoch, log_started}
