-- put.lua: create or update one record, append its change event to the
-- namespace's log and publish it, all in one atomic step.
--
-- KEYS[1]  records hash     rm:{<ns>}:records  field <key> -> record JSON
-- KEYS[2]  key index zset   rm:{<ns>}:keys     every live key, score 0
-- KEYS[3]  log metadata     rm:{<ns>}:meta     epoch, seq, last, floor, ...
-- KEYS[4]  change log       rm:{<ns>}:log      stream of change events
-- KEYS[5]  compaction index rm:{<ns>}:snap     cleared when a new epoch starts
-- KEYS[6]  tombstone index  rm:{<ns>}:tombs    cleared when a new epoch starts
--          (KEYS[5] and KEYS[6] may be left out by a caller that never
--          compacts; ARGV[7] and ARGV[8] then default to 0)
--
-- ARGV[1]  namespace (already validated by the client)
-- ARGV[2]  key (already validated by the client)
-- ARGV[3]  mode: "put" (create or update), "create" or "update"
-- ARGV[4]  value, serialised JSON (stored and published verbatim)
-- ARGV[5]  expected current version, "" for any; 0 means "must not exist"
-- ARGV[6]  pub/sub channel for the event
-- ARGV[7]  compaction length threshold: uncompacted events that make
--          compaction due, 0 = never for length
-- ARGV[8]  compaction age threshold in ms: an uncompacted event older than
--          this makes compaction due, 0 = never for age
--
-- "Now" is the ms part of the event's stream ID, which XADD takes from
-- Redis time and never lets go below the log's previous entry; so time
-- ranges over the log map exactly onto stream ID ranges, and the event's
-- time needs no field of its own.
--
-- Reply, one string of space-separated fields (cheaper for Redis to return
-- than an array):
--   "0 <version> <created_ms> <updated_ms> <log_started> <compaction_due>"
--     success; log_started is 1 when this write began a new log epoch,
--     compaction_due 1 when a threshold is exceeded
--   "1 <actual_version>"  expected version did not match (0 = absent)
--   "2 <actual_version>"  mode "create" and the key exists
--   "3"                   mode "update" and the key is missing
-- A refusal writes nothing.
--
-- Example:
--   redis-cli --eval lua/put.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' 'rm:{users}:snap' 'rm:{users}:tombs' \
--     , users alice put '{"name":"Alice"}' '' rm:ch:users 10000 86400000

-- Every redis.call costs more than the Lua around it, and every number
-- handed to Redis or joined into a string is formatted by sprintf: so this
-- script reads the record and the metadata once each, writes each once,
-- and turns each number into a string once.

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local namespace, key, mode = ARGV[1], ARGV[2], ARGV[3]
local value, expected, channel = ARGV[4], ARGV[5], ARGV[6]
local max_length, max_age = tonumber(ARGV[7] or 0), tonumber(ARGV[8] or 0)

local current = redis.call('HGET', records, key)
local version, created = 0, nil
if current then
    local v, c = string.match(current, '^{"version":(%d+),"created":(%d+),')
    version, created = tonumber(v), c
end

if expected ~= '' and tonumber(expected) ~= version then
    return '1 ' .. version
end
if mode == 'create' and current then
    return '2 ' .. version
end
if mode == 'update' and not current then
    return '3'
end

local state = redis.call('HMGET', meta, 'epoch', 'seq', 'cseq', 'tail')
local epoch = state[1]
local log_started = '0'
if not epoch then
    -- The log's metadata is missing (new namespace, flush, eviction): start
    -- a new epoch so every cursor into an older log is known to be stale.
    local time = redis.call('TIME')
    epoch = time[1] .. string.format('%06d', tonumber(time[2]))
    redis.call('DEL', log)
    if KEYS[6] then
        redis.call('DEL', KEYS[5], KEYS[6])
    end
    redis.call('HSET', meta, 'epoch', epoch, 'floor', '0', 'cseq', '0',
        'cid', '0-0', 'runs', '0')
    state = {epoch, '0', '0', false}
    log_started = '1'
end

version = tostring(version + 1)
local seq_n = tonumber(state[2]) + 1
local seq = tostring(seq_n)

-- A create's "created" is its own event time, so only an update carries it.
local id, op
if current then
    op = 'update'
    id = redis.call('XADD', log, '*', 'key', key, 'op', op, 'version', version,
        'seq', seq, 'created', created, 'value', value)
else
    op = 'create'
    id = redis.call('XADD', log, '*', 'key', key, 'op', op, 'version', version,
        'seq', seq, 'value', value)
end
local now = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
created = created or now

-- "tail" is the first event compaction has not folded yet: its age is what
-- the age threshold looks at, kept here so no write has to read the log.
local uncompacted = seq_n - tonumber(state[3] or 0)
if uncompacted == 1 then
    redis.call('HSET', meta, 'seq', seq, 'last', id, 'tail', id)
else
    redis.call('HSET', meta, 'seq', seq, 'last', id)
end

redis.call('HSET', records, key, '{"version":' .. version .. ',"created":' .. created
    .. ',"updated":' .. now .. ',"value":' .. value .. '}')
if not current then
    redis.call('ZADD', index, '0', key)
end

-- Namespace and key are restricted to characters that need no JSON escaping.
redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"' .. op .. '","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":' .. value .. '}')

-- Compaction is due when the uncompacted tail is too long or its oldest
-- event too old; the client then runs compact.lua, one bounded batch.
local due = '0'
if max_length > 0 and uncompacted > max_length then
    due = '1'
elseif max_age > 0 and uncompacted > 1 then
    local tail = state[4]
    if not tail then
        -- A log from before "tail" was kept: find the first unfolded event.
        local cid = redis.call('HGET', meta, 'cid') or '0-0'
        local oldest = redis.call('XRANGE', log, '(' .. cid, '+', 'COUNT', 1)[1]
        tail = oldest and oldest[1]
    end
    local oldest_ms = tail and tonumber(string.match(tail, '^(%d+)-'))
    if oldest_ms and oldest_ms < tonumber(now) - max_age then
        due = '1'
    end
end

return '0 ' .. version .. ' ' .. created .. ' ' .. now .. ' ' .. log_started .. ' '
    .. due
