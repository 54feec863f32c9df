-- changes.lua: one page of a namespace's change log, with the log's epoch,
-- so a reader can tell whether its cursor still belongs to this log.
--
-- KEYS[1]  log metadata     rm:{<ns>}:meta
-- KEYS[2]  change log       rm:{<ns>}:log
--
-- ARGV[1]  exclusive start: the stream ID of the last event read, "" to start
-- ARGV[2]  page size (1..1000, checked by the client)
-- ARGV[3]  epoch the cursor belongs to, "" when starting without a cursor
--
-- Reply:
--   {0, epoch, entries, more}  entries as XRANGE returns them, at most the
--                        page size; more is 1 when events follow the page;
--                        epoch is "" when the namespace has no log yet
--   {1, epoch}           the cursor's epoch is not the log's: it is stale
--
-- Example:
--   redis-cli --eval lua/changes.lua 'rm:{users}:meta' 'rm:{users}:log' , '' 10 ''

local meta, log = KEYS[1], KEYS[2]
local after, limit, cursor_epoch = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local epoch = redis.call('HGET', meta, 'epoch') or ''
if cursor_epoch ~= '' and cursor_epoch ~= epoch then
    return {1, epoch}
end

local start = '-'
if after ~= '' then
    start = '(' .. after
end
-- One extra entry tells whether another page follows.
local entries = redis.call('XRANGE', log, start, '+', 'COUNT', limit + 1)
local more = 0
if #entries > limit then
    more = 1
    entries[#entries] = nil
end
return {0, epoch, entries, more}
