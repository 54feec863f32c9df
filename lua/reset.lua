-- reset.lua: every record of a namespace with the log position they reflect,
-- read atomically, so a reader that lost its place can start again from it.
--
-- KEYS[1]  records hash     rm:{<ns>}:records
-- KEYS[2]  log metadata     rm:{<ns>}:meta     epoch, seq, last
--
-- ARGV[1]  none: the script takes no arguments
--
-- Reply: {epoch, seq, last_id, records} where records is the flat
-- HGETALL array (key, record JSON, ...); epoch is "" and seq 0 when the
-- namespace has no log. The whole namespace is read in one call, so its cost
-- grows with the namespace (HGETALL).
--
-- Example:
--   redis-cli --eval lua/reset.lua 'rm:{users}:records' 'rm:{users}:meta'

local records, meta = KEYS[1], KEYS[2]

local state = redis.call('HMGET', meta, 'epoch', 'seq', 'last')
return {state[1] or '', state[2] or '0', state[3] or '0-0',
    redis.call('HGETALL', records)}
