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
-- "Now" is Redis time (TIME) in milliseconds, raised to the log's last event
-- time if the clock stepped back, and it is the ms part of the event's stream
-- ID, so time ranges over the log map exactly onto stream ID ranges.
--
-- Reply, a flat array:
--   {0, version, created_ms, updated_ms, seq, event_id, epoch, log_started,
--    compaction_due}
--     success; log_started is 1 when this write began a new log epoch,
--     compaction_due 1 when a threshold is exceeded
--   {1, actual_version}  expected version did not match (0 = absent)
--   {2, actual_version}  mode "create" and the key exists
--   {3}                  mode "update" and the key is missing
-- A refusal writes nothing.
--
-- Example:
--   redis-cli --eval lua/put.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' 'rm:{users}:snap' 'rm:{users}:tombs' \
--     , users alice put '{"name":"Alice"}' '' rm:ch:users 10000 86400000

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local snap, tombs = KEYS[5], KEYS[6]
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
    return {1, version}
end
if mode == 'create' and current then
    return {2, version}
end
if mode == 'update' and not current then
    return {3}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
version = version + 1
local op = current and 'update' or 'create'

local state = redis.call('HMGET', meta, 'epoch', 'last', 'cseq', 'cid', 'tail')
local epoch, last = state[1], state[2]
local log_started = 0
if not epoch then
    -- The log's metadata is missing (new namespace, flush, eviction): start
    -- a new epoch so every cursor into an older log is known to be stale.
    epoch = time[1] .. string.format('%06d', tonumber(time[2]))
    redis.call('DEL', log)
    if tombs then
        redis.call('DEL', snap, tombs)
    end
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'floor', 0, 'cseq', 0,
        'cid', '0-0', 'runs', 0)
    state = {epoch, false, '0', '0-0', false}
    log_started = 1
elseif last then
    local last_ms = tonumber(string.match(last, '^(%d+)-'))
    if last_ms > now then
        now = last_ms
    end
end
local now_ms = now
now = string.format('%d', now_ms)
created = created or now
local seq = redis.call('HINCRBY', meta, 'seq', 1)

local id = redis.call('XADD', log, now .. '-*', 'key', key, 'op', op,
    'version', version, 'seq', seq, 'ts', now, 'created', created,
    'value', value)
-- "tail" is the first event compaction has not folded yet: its age is what
-- the age threshold looks at, kept here so no write has to read the log.
if seq - tonumber(state[3] or 0) == 1 then
    redis.call('HSET', meta, 'last', id, 'tail', id)
else
    redis.call('HSET', meta, 'last', id)
end

redis.call('HSET', records, key, '{"version":' .. version .. ',"created":' .. created
    .. ',"updated":' .. now .. ',"value":' .. value .. '}')
if op == 'create' then
    redis.call('ZADD', index, 0, key)
end

-- Namespace and key are restricted to characters that need no JSON escaping.
redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"' .. op .. '","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":' .. value .. '}')

-- Compaction is due when the uncompacted tail is too long or its oldest
-- event too old; the client then runs compact.lua, one bounded batch.
local due = 0
local uncompacted = seq - tonumber(state[3] or 0)
if max_length > 0 and uncompacted > max_length then
    due = 1
elseif max_age > 0 and uncompacted > 1 then
    local tail = state[5]
    if not tail then
        -- A log from before "tail" was kept: find the first unfolded event.
        local oldest = redis.call('XRANGE', log, '(' .. (state[4] or '0-0'), '+',
            'COUNT', 1)[1]
        tail = oldest and oldest[1]
    end
    local oldest_ms = tail and tonumber(string.match(tail, '^(%d+)-'))
    if oldest_ms and oldest_ms < now_ms - max_age then
        due = 1
    end
end

return {0, version, created, now, seq, id, epoch, log_started, due}
