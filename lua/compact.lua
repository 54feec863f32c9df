-- compact.lua: one batch of log compaction for a namespace, atomic.
--
-- The log's oldest events are folded, in order, into the compacted prefix:
-- for every key it keeps only that key's latest event, found through the
-- compaction index. Tombstones (delete events) stay for a retention period,
-- then are removed. The compacted prefix is the snapshot replay starts from;
-- "cseq"/"cid" in the metadata mark how far it reaches, and "floor" is the
-- highest seq ever removed: a cursor below it has lost events.
--
-- KEYS[1]  log metadata     rm:{<ns>}:meta   seq, cseq, cid, floor, runs
-- KEYS[2]  change log       rm:{<ns>}:log
-- KEYS[3]  compaction index rm:{<ns>}:snap   key -> "<seq> <stream id>" of
--                                            the key's folded event
-- KEYS[4]  tombstone index  rm:{<ns>}:tombs  zset key -> delete time (ms)
--
-- ARGV[1]  batch: most events folded, and most tombstones removed, per call
-- ARGV[2]  keep: the newest events that stay unfolded (0 folds everything)
-- ARGV[3]  max age in ms: older events are folded even within "keep",
--          0 = no age rule
-- ARGV[4]  tombstone retention in ms
--
-- "Now" is Redis time (TIME), in milliseconds.
--
-- Reply: {folded, tombstones_removed, pending, cseq, floor}; pending is 1
-- when another call would find more work.
--
-- Example (compact everything, tombstones kept for a day):
--   redis-cli --eval lua/compact.lua 'rm:{users}:meta' 'rm:{users}:log' \
--     'rm:{users}:snap' 'rm:{users}:tombs' , 500 0 0 86400000

local meta, log, snap, tombs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_age, retention = tonumber(ARGV[3]), tonumber(ARGV[4])

local state = redis.call('HMGET', meta, 'epoch', 'seq', 'cseq', 'cid', 'floor')
if not state[1] then
    return {0, 0, 0, 0, 0}
end
local head = tonumber(state[2])
local cseq, cid = tonumber(state[3] or 0), state[4] or '0-0'
local floor = tonumber(state[5] or 0)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function field(fields, name)
    for i = 1, #fields, 2 do
        if fields[i] == name then
            return fields[i + 1]
        end
    end
end

-- Remove the folded event "<seq> <id>" from the log.
local function remove(folded)
    local seq, id = string.match(folded, '^(%d+) (.+)$')
    redis.call('XDEL', log, id)
    if tonumber(seq) > floor then
        floor = tonumber(seq)
    end
end

local folded, pending, tail = 0, 0, nil
local entries = redis.call('XRANGE', log, '(' .. cid, '+', 'COUNT', batch)
for _, entry in ipairs(entries) do
    local id, fields = entry[1], entry[2]
    local seq = tonumber(field(fields, 'seq'))
    local ms = tonumber(string.match(id, '^(%d+)-'))
    local aged = max_age > 0 and ms < now - max_age
    if seq > head - keep and not aged then
        tail = id
        break
    end

    local key = field(fields, 'key')
    local previous = redis.call('HGET', snap, key)
    if previous then
        remove(previous)
    end
    redis.call('HSET', snap, key, seq .. ' ' .. id)
    if field(fields, 'op') == 'delete' then
        redis.call('ZADD', tombs, ms, key)
    else
        redis.call('ZREM', tombs, key)
    end
    cseq, cid, folded = seq, id, folded + 1
end
if folded == batch then
    pending = 1
end

-- Tombstones whose retention is over (now - delete time >= retention)
-- leave the log and both indexes.
local expired = redis.call('ZRANGEBYSCORE', tombs, '-inf',
    string.format('%d', now - retention), 'LIMIT', 0, batch)
for _, key in ipairs(expired) do
    local previous = redis.call('HGET', snap, key)
    if previous then
        remove(previous)
    end
    redis.call('HDEL', snap, key)
    redis.call('ZREM', tombs, key)
end
if #expired == batch then
    pending = 1
end

if folded > 0 or #expired > 0 then
    if folded > 0 and not tail then
        -- The batch ended at its size or at the log's end: the first event
        -- left unfolded (if any) is the next one.
        local next_entry = redis.call('XRANGE', log, '(' .. cid, '+', 'COUNT', 1)[1]
        tail = next_entry and next_entry[1] or ''
    end
    if tail then
        redis.call('HSET', meta, 'tail', tail)
    end
    redis.call('HSET', meta, 'cseq', cseq, 'cid', cid, 'floor', floor)
    redis.call('HINCRBY', meta, 'runs', 1)
end
return {folded, #expired, pending, cseq, floor}
