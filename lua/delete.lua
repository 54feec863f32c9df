-- delete.lua: delete one record, append its "delete" change event (a
-- tombstone) to the namespace's log and publish it, all in one atomic step.
--
-- KEYS[1]  records hash     rm:{<ns>}:records
-- KEYS[2]  key index zset   rm:{<ns>}:keys
-- KEYS[3]  log metadata     rm:{<ns>}:meta
-- KEYS[4]  change log       rm:{<ns>}:log
-- KEYS[5]  compaction index rm:{<ns>}:snap     cleared when a new epoch starts
-- KEYS[6]  tombstone index  rm:{<ns>}:tombs    cleared when a new epoch starts
--          (KEYS[5] and KEYS[6] may be left out by a caller that never
--          compacts; ARGV[5] and ARGV[6] then default to 0)
--
-- ARGV[1]  namespace (already validated by the client)
-- ARGV[2]  key (already validated by the client)
-- ARGV[3]  expected current version, "" for any
-- ARGV[4]  pub/sub channel for the event
-- ARGV[5]  compaction length threshold (events), 0 = never for length
-- ARGV[6]  compaction age threshold in ms, 0 = never for age
--
-- "Now" is Redis time (TIME) in milliseconds, never below the log's last
-- event time; it is the ms part of the event's stream ID (see put.lua).
--
-- Reply, a flat array:
--   {0, version, seq, event_id, epoch, ts_ms, log_started, compaction_due}
--     deleted; version is the tombstone's version (the last version + 1)
--   {1, actual_version}  expected version did not match (0 = absent)
--   {3}                  the key is missing (nothing written)
--
-- Example:
--   redis-cli --eval lua/delete.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' 'rm:{users}:snap' 'rm:{users}:tombs' \
--     , users alice '' rm:ch:users 10000 86400000

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local snap, tombs = KEYS[5], KEYS[6]
local namespace, key, expected, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_length, max_age = tonumber(ARGV[5] or 0), tonumber(ARGV[6] or 0)

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
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
version = version + 1

local state = redis.call('HMGET', meta, 'epoch', 'last', 'cseq', 'cid', 'tail')
local epoch, last = state[1], state[2]
local log_started = 0
if not epoch then
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
    if last_ms > now_ms then
        now_ms = last_ms
    end
end
local now = string.format('%d', now_ms)
local seq = redis.call('HINCRBY', meta, 'seq', 1)

redis.call('HDEL', records, key)
redis.call('ZREM', index, key)

local id = redis.call('XADD', log, now .. '-*', 'key', key, 'op', 'delete',
    'version', version, 'seq', seq, 'ts', now)
-- "tail" is the first event compaction has not folded yet: its age is what
-- the age threshold looks at, kept here so no write has to read the log.
if seq - tonumber(state[3] or 0) == 1 then
    redis.call('HSET', meta, 'last', id, 'tail', id)
else
    redis.call('HSET', meta, 'last', id)
end

redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"delete","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":null}')

-- Same compaction thresholds as put.lua.
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

return {0, version, seq, id, epoch, now, log_started, due}
