-- replay.lua: one page of the whole retained log (compacted prefix included)
-- for replay, with the metadata that tells whether compaction ran meanwhile.
--
-- KEYS[1]  log metadata     rm:{<ns>}:meta   epoch, seq, cseq, cid, runs
-- KEYS[2]  change log       rm:{<ns>}:log
--
-- ARGV[1]  exclusive start: stream ID of the last entry read, "" to start
-- ARGV[2]  inclusive end: a stream ID, an event time in ms, or "+"
-- ARGV[3]  page size
--
-- Reply: {epoch, seq, cseq, cid, runs, entries, more}; epoch is "" when the
-- namespace has no log; runs counts compaction batches that changed the log.
--
-- Example (the first 100 entries):
--   redis-cli --eval lua/replay.lua 'rm:{users}:meta' 'rm:{users}:log' , '' + 100

local meta, log = KEYS[1], KEYS[2]
local after, upto, count = ARGV[1], ARGV[2], tonumber(ARGV[3])

local state = redis.call('HMGET', meta, 'epoch', 'seq', 'cseq', 'cid', 'runs')
local start = '-'
if after ~= '' then
    start = '(' .. after
end
local entries = redis.call('XRANGE', log, start, upto, 'COUNT', count + 1)
local more = 0
if #entries > count then
    more = 1
    entries[#entries] = nil
end
return {state[1] or '', state[2] or '0', state[3] or '0', state[4] or '0-0',
    state[5] or '0', entries, more}
