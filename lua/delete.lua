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
-- "Now" is the ms part of the event's stream ID, which XADD takes from
-- Redis time and never lets go below the log's previous entry (see put.lua).
--
-- Reply, one string of space-separated fields (as put.lua):
--   "0 <version> <log_started> <compaction_due>"
--     deleted; version is the tombstone's version (the last version + 1)
--   "1 <actual_version>"  expected version did not match (0 = absent)
--   "3"                   the key is missing (nothing written)
--
-- Example:
--   redis-cli --eval lua/delete.lua 'rm:{users}:records' 'rm:{users}:keys' \
--     'rm:{users}:meta' 'rm:{users}:log' 'rm:{users}:snap' 'rm:{users}:tombs' \
--     , users alice '' rm:ch:users 10000 86400000

local records, index, meta, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local namespace, key, expected, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_length, max_age = tonumber(ARGV[5] or 0), tonumber(ARGV[6] or 0)

local current = redis.call('HGET', records, key)
local version = 0
if current then
    version = tonumber(string.match(current, '^{"version":(%d+),'))
end

if expected ~= '' and tonumber(expected) ~= version then
    return '1 ' .. version
end
if not current then
    return '3'
end

-- As in put.lua: the metadata read once and written once, and each number
-- turned into a string once.
local state = redis.call('HMGET', meta, 'epoch', 'seq', 'cseq', 'tail')
local epoch = state[1]
local log_started = '0'
if not epoch then
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

redis.call('HDEL', records, key)
redis.call('ZREM', index, key)

local id = redis.call('XADD', log, '*', 'key', key, 'op', 'delete',
    'version', version, 'seq', seq)
local now = string.sub(id, 1, string.find(id, '-', 1, true) - 1)

-- "tail" is the first event compaction has not folded yet (see put.lua).
local uncompacted = seq_n - tonumber(state[3] or 0)
if uncompacted == 1 then
    redis.call('HSET', meta, 'seq', seq, 'last', id, 'tail', id)
else
    redis.call('HSET', meta, 'seq', seq, 'last', id)
end

redis.call('PUBLISH', channel, '{"ns":"' .. namespace .. '","key":"' .. key
    .. '","op":"delete","version":' .. version .. ',"seq":' .. seq
    .. ',"ts":' .. now .. ',"epoch":"' .. epoch .. '","id":"' .. id
    .. '","value":null}')

-- Same compaction thresholds as put.lua.
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

return '0 ' .. version .. ' ' .. log_started .. ' ' .. due
