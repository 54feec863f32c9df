-- stats.lua: the size and position of one namespace's log and records.
--
-- KEYS[1]  log metadata     rm:{<ns>}:meta
-- KEYS[2]  change log       rm:{<ns>}:log
-- KEYS[3]  records hash     rm:{<ns>}:records
-- KEYS[4]  key index zset   rm:{<ns>}:keys
-- KEYS[5]  compaction index rm:{<ns>}:snap
-- KEYS[6]  tombstone index  rm:{<ns>}:tombs
--
-- ARGV[1]  none: the script takes no arguments
--
-- Reply: {epoch, seq, cseq, floor, events, first_seq, records, memory}:
-- events is the log's length, first_seq the seq of its oldest entry (0 when
-- empty), memory the bytes MEMORY USAGE reports for all six keys, -1 when the
-- server has no MEMORY command (the embedded mode).
--
-- Example:
--   redis-cli --eval lua/stats.lua 'rm:{users}:meta' 'rm:{users}:log' \
--     'rm:{users}:records' 'rm:{users}:keys' 'rm:{users}:snap' \
--     'rm:{users}:tombs'

local meta, log, records = KEYS[1], KEYS[2], KEYS[3]

local state = redis.call('HMGET', meta, 'epoch', 'seq', 'cseq', 'floor')
local first_seq = 0
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
if first then
    for i = 1, #first[2], 2 do
        if first[2][i] == 'seq' then
            first_seq = tonumber(first[2][i + 1])
        end
    end
end

local memory = 0
for _, name in ipairs(KEYS) do
    local used = redis.pcall('MEMORY', 'USAGE', name)
    if type(used) == 'table' and used.err then
        memory = -1
        break
    end
    memory = memory + (used or 0)
end

return {state[1] or '', state[2] or '0', state[3] or '0', state[4] or '0',
    redis.call('XLEN', log), first_seq, redis.call('HLEN', records), memory}
