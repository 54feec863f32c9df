-- changes.lua: one page of a namespace's change log after the compaction
-- point, filtered by operation, key and time, oldest or newest first.
--
-- KEYS[1]  log metadata     rm:{<ns>}:meta   epoch, floor, cid
-- KEYS[2]  change log       rm:{<ns>}:log
--
-- ARGV[1]  cursor: stream ID of the last entry examined, "" to start
-- ARGV[2]  the cursor's seq, "" without a cursor
-- ARGV[3]  the cursor's epoch, "" without a cursor
-- ARGV[4]  page size (1..1000, checked by the client)
-- ARGV[5]  direction: "asc" (oldest first) or "desc" (newest first)
-- ARGV[6]  operations to keep as ",op,op,", "" for all
-- ARGV[7]  exact key to keep, "" for all
-- ARGV[8]  key prefix to keep, "" for all
-- ARGV[9]  since: lowest event time in ms (inclusive), "" for none
-- ARGV[10] until: highest event time in ms (inclusive), "" for none
-- ARGV[11] scan budget: most entries examined in this call
--
-- Event times are the ms part of stream IDs (see put.lua), so the time range
-- is a stream ID range. Without a cursor, entries folded by compaction (up
-- to cid) are left out: they are the snapshot that replay reads. A cursor at
-- or above the floor reads on from where it is.
--
-- Reply:
--   {0, epoch, entries, more, next_id, next_seq}  entries as XRANGE returns
--        them; more is 1 when entries may follow, then next_id/next_seq name
--        the last entry examined (the next page starts after it); epoch is
--        "" when the namespace has no log yet
--   {1, epoch}         the cursor's epoch is not the log's
--   {2, epoch, floor}  events after the cursor were removed by compaction
--
-- Example (the 10 newest deletes of keys starting with "user:"):
--   redis-cli --eval lua/changes.lua 'rm:{users}:meta' 'rm:{users}:log' , \
--     '' '' '' 10 desc ,delete, '' user: '' '' 10000

local meta, log = KEYS[1], KEYS[2]
local cursor, cursor_seq, cursor_epoch = ARGV[1], ARGV[2], ARGV[3]
local limit, ascending = tonumber(ARGV[4]), ARGV[5] == 'asc'
local ops, exact, prefix = ARGV[6], ARGV[7], ARGV[8]
local since, till, budget = ARGV[9], ARGV[10], tonumber(ARGV[11])

local state = redis.call('HMGET', meta, 'epoch', 'floor', 'cid')
local epoch, floor, cid = state[1] or '', tonumber(state[2] or 0), state[3] or '0-0'
if cursor_epoch ~= '' and cursor_epoch ~= epoch then
    return {1, epoch}
end
if ascending and cursor_seq ~= '' and tonumber(cursor_seq) < floor then
    return {2, epoch, floor}
end

local function parse(id)
    local ms, n = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(n)
end

-- Is stream ID a before b?
local function before(a, b)
    local ams, an = parse(a)
    local bms, bn = parse(b)
    return ams < bms or (ams == bms and an < bn)
end

-- Lower bound: the cursor when ascending (nothing after it was removed, so
-- reading may go through the compacted prefix), else the compaction point;
-- then since.
local low, low_open = cid, true
if ascending and cursor ~= '' then
    low = cursor
end
if since ~= '' and before(low, since .. '-0') then
    low, low_open = since .. '-0', false
end

-- Upper bound: until, and the cursor when descending.
local high, high_open = '+', false
if till ~= '' then
    high = till .. '-18446744073709551615'
end
if not ascending and cursor ~= '' and (high == '+' or before(cursor, high)) then
    high, high_open = cursor, true
end

local function bound(id, open)
    if open then
        return '(' .. id
    end
    return id
end

local function keep(fields)
    -- Every entry starts with key, op (see put.lua and delete.lua).
    local key, op = fields[2], fields[4]
    if ops ~= '' and not string.find(ops, ',' .. op .. ',', 1, true) then
        return false
    end
    if exact ~= '' and key ~= exact then
        return false
    end
    return prefix == '' or string.sub(key, 1, #prefix) == prefix
end

local items, examined, more, last = {}, 0, 0, nil
local step = math.min(math.max(limit, 16), budget)
local done = false
while not done do
    local batch
    if ascending then
        batch = redis.call('XRANGE', log, bound(low, low_open), bound(high, high_open),
            'COUNT', step)
    else
        batch = redis.call('XREVRANGE', log, bound(high, high_open),
            bound(low, low_open), 'COUNT', step)
    end
    for _, entry in ipairs(batch) do
        if #items == limit or examined == budget then
            more, done = 1, true
            break
        end
        examined = examined + 1
        last = entry
        if keep(entry[2]) then
            items[#items + 1] = entry
        end
    end
    if not done then
        if #batch < step then
            done = true
        elseif ascending then
            low, low_open = last[1], true
        else
            high, high_open = last[1], true
        end
    end
end

if more == 0 then
    return {0, epoch, items, 0, '', ''}
end
local seq = ''
for i = 1, #last[2], 2 do
    if last[2][i] == 'seq' then
        seq = last[2][i + 1]
    end
end
return {0, epoch, items, 1, last[1], seq}
