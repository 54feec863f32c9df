-- limit_hit.lua: check, consume or refund several rate limits of one subject,
-- all or nothing, with the subject's allow/deny entry and ban checked first.
--
-- KEYS[1]  list entry   rl:{<s>}:acl      string "allow" or "deny" (absent: neither)
-- KEYS[2]  ban          rl:{<s>}:ban      string: the ban's end (ms); expires then
-- KEYS[3]  strikes      rl:{<s>}:strikes  hash v, vs (refusals in the window and
--          its start, ms), strikes, last (ms of the last ban)
-- KEYS[4]  usage prefix rl:{<s>}:use      never read itself; the script appends
--          ":m:<YYYYMMDDhhmm>" and ":d:<YYYYMMDD>" (UTC) to name the usage
--          counter hashes. Same hash tag, so the same cluster slot.
-- KEYS[5..] limit state, in the order the limits name them: a string
--          "<window start ms>:<count>" (fixed window, quota) or
--          "<level>:<ms of level>" (buckets); a sliding window uses two keys,
--          its log zset (member "<seq>:<cost>", score ms), then a hash with
--          the running total n and the entry counter seq
--
-- ARGV[1]  mode: "hit" (consume), "peek" (answer only) or "refund" (give back)
-- ARGV[2]  cost in units, integer >= 1 (peek: >= 0)
-- ARGV[3]  operation name; usage hash fields are <op>:a, <op>:r (allowed and
--          refused requests) and <op>:ax, <op>:rx (their cost beyond 1 each,
--          written only when a cost exceeds 1; cost = requests + extra)
-- ARGV[4]  retention of minute usage hashes, seconds ("0": count no usage)
-- ARGV[5]  retention of day usage hashes, seconds
-- ARGV[6]  backoff: refusals within the window that earn a ban ("0": off)
-- ARGV[7]  backoff: window in which refusals count, ms
-- ARGV[8]  backoff: first ban, ms
-- ARGV[9]  backoff: factor by which each strike lengthens the ban
-- ARGV[10] backoff: longest ban, ms
-- ARGV[11] backoff: quiet time after which one strike is forgiven, ms
-- ARGV[12] N, the number of limits
-- ARGV[13..] N groups of 7: algorithm, first key index, amount, period (ms),
--          capacity, shaping (0/1), UTC offset (seconds)
--   algorithm  fw fixed window, sw sliding window (exact log), tb token bucket,
--              lb leaky bucket, qd daily quota, qm monthly quota
--   amount     requests per period (tb: tokens added, lb: units drained)
--   capacity   the most a limit can ever hold: amount, or the burst (tb, lb)
--
-- "Now" is Redis time (TIME) in whole milliseconds; no client clock is used.
--
-- Reply: {allowed, reason, limit, remaining, retry_ms, reset_ms, delay_ms, now_ms}
--   allowed   1 or 0
--   reason    0 within limits, 1 refused by a limit, 2 the cost exceeds the
--             limit's capacity (can never succeed), 3 deny-listed, 4 banned,
--             5 allow-listed (never limited; limits are peeked, not consumed)
--   limit     1-based index of the limit that decided (0: none did)
--   retry_ms  wait before the same request can succeed; -1: it never can
--   reset_ms  wait until the deciding limit is back to full capacity
--   delay_ms  leaky bucket shaping: wait before proceeding with the request
-- A refused hit consumes nothing; it only counts usage and backoff strikes.
--
-- Example (a token bucket, 10/s with a burst of 2, for subject alice):
--   redis-cli --eval lua/limit_hit.lua 'rl:{alice}:acl' 'rl:{alice}:ban' \
--     'rl:{alice}:strikes' 'rl:{alice}:use' 'rl:{alice}:s:default:tb:1000' , \
--     hit 1 default 7200 3024000 0 0 0 1 0 0 1 tb 5 10 1000 2 0 0

local acl_key, ban_key, strikes_key, usage_prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, cost, operation = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local minute_ttl, day_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local strikes_at, strike_window = tonumber(ARGV[6]), tonumber(ARGV[7])
local ban_base, ban_factor = tonumber(ARGV[8]), tonumber(ARGV[9])
local ban_max, strike_decay = tonumber(ARGV[10]), tonumber(ARGV[11])
local count = tonumber(ARGV[12])

local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + floor(tonumber(time[2]) / 1000)

-- calendar begin: proleptic Gregorian dates <-> days since 1970-01-01
-- (H. Hinnant's days_from_civil / civil_from_days), so months have their
-- real lengths and leap years are right.
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local function civil_from_days(z)
    z = z + 719468
    local era = floor(z / 146097)
    local doe = z - era * 146097
    local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524)
        - floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
    local mp = floor((5 * doy + 2) / 153)
    local d = doy - floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400
    if m <= 2 then y = y + 1 end
    return y, m, d
end

-- The calendar period around `at_ms` in a zone `offset` seconds east of UTC:
-- its start and end, in ms since the epoch.
local function calendar_period(at_ms, offset, monthly)
    local day = floor((floor(at_ms / 1000) + offset) / 86400)
    local first, next_first = day, day + 1
    if monthly then
        local y, m = civil_from_days(day)
        first = days_from_civil(y, m, 1)
        if m == 12 then
            next_first = days_from_civil(y + 1, 1, 1)
        else
            next_first = days_from_civil(y, m + 1, 1)
        end
    end
    return (first * 86400 - offset) * 1000, (next_first * 86400 - offset) * 1000
end
-- calendar end

local function num(text)
    return string.format('%.17g', text)
end

-- Each limit is read into a table:
--   left      units it can still admit now (may be < 0 after a shrink)
--   fits      whether `cost` fits now;  never: cost > capacity
--   retry     ms until `cost` would fit; reset, reset_hit: ms until full,
--             now and after this hit;  delay: shaping wait after this hit
--   commit(), give_back(): write the consumed or refunded state
local limits = {}

-- A state string "<a>:<b>" as two numbers (nil, nil when absent).
local function pair(key)
    local state = redis.call('GET', key)
    if not state then return nil, nil end
    local a, b = string.match(state, '^([^:]+):(.+)$')
    return tonumber(a), tonumber(b)
end

local function counter(limit, key, start, finish)
    local window, count = pair(key)
    local used = 0
    if window == start then used = count end
    limit.left = limit.capacity - used
    limit.fits = used + cost <= limit.capacity
    limit.retry = finish - now
    limit.reset = used > 0 and finish - now or 0
    limit.reset_hit = finish - now
    limit.commit = function()
        redis.call('SET', key, start .. ':' .. (used + cost), 'PXAT', finish)
    end
    limit.give_back = function()
        if used > 0 then
            redis.call('SET', key, start .. ':' .. max(0, used - cost), 'PXAT', finish)
        end
    end
end

local function sliding(limit, log, totals)
    local period = limit.period
    -- Entries at or before now - period have left the window: drop them and
    -- their cost from the running total, so the total is the window's sum.
    local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - period)
    if #gone > 0 then
        local freed = 0
        for _, member in ipairs(gone) do
            freed = freed + tonumber(string.match(member, ':(%d+)$'))
        end
        redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
        redis.call('HINCRBY', totals, 'n', -freed)
    end
    local used = tonumber(redis.call('HGET', totals, 'n') or '0')
    limit.left = limit.capacity - used
    limit.fits = used + cost <= limit.capacity
    limit.reset, limit.reset_hit, limit.retry = 0, period, 0
    if used > 0 then
        local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
        limit.reset = tonumber(newest[2]) + period - now
    end
    if not limit.fits and cost <= limit.capacity then
        -- Walk the log oldest first until enough cost will have left it.
        local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
        local still = used
        for i = 1, #entries, 2 do
            still = still - tonumber(string.match(entries[i], ':(%d+)$'))
            if still + cost <= limit.capacity then
                limit.retry = tonumber(entries[i + 1]) + period - now
                break
            end
        end
    end
    limit.commit = function()
        local seq = redis.call('HINCRBY', totals, 'seq', 1)
        redis.call('ZADD', log, now, seq .. ':' .. cost)
        redis.call('HINCRBY', totals, 'n', cost)
        redis.call('PEXPIRE', log, period)
        redis.call('PEXPIRE', totals, period)
    end
    limit.give_back = function()
        -- Refund the newest entries first; split one if it holds more.
        local owed = cost
        local entries = redis.call('ZREVRANGE', log, 0, -1, 'WITHSCORES')
        for i = 1, #entries, 2 do
            if owed <= 0 then break end
            local seq, units = string.match(entries[i], '^(%d+):(%d+)$')
            units = tonumber(units)
            redis.call('ZREM', log, entries[i])
            if units > owed then
                redis.call('ZADD', log, entries[i + 1], seq .. ':' .. (units - owed))
                units = owed
            end
            owed = owed - units
            redis.call('HINCRBY', totals, 'n', -units)
        end
    end
end

local function bucket(limit, key, draining)
    -- rate in units per ms; a token bucket starts full, a leaky one empty.
    -- Both are clamped to the capacity, so a shrunk limit takes effect at once.
    local rate = limit.amount / limit.period
    local level, since = pair(key)
    local elapsed = since and max(0, now - since) or 0
    local room, after
    if draining then
        level = min(limit.capacity, max(0, (level or 0) - elapsed * rate))
        room = limit.capacity - level
        after = level + cost
        limit.reset = ceil(level / rate)
        limit.reset_hit = ceil(after / rate)
        limit.delay = ceil(level / rate)
    else
        level = min(limit.capacity, (level or limit.capacity) + elapsed * rate)
        room = level
        after = level - cost
        limit.reset = ceil((limit.capacity - level) / rate)
        limit.reset_hit = ceil((limit.capacity - after) / rate)
    end
    limit.left = floor(room + 1e-9)
    limit.fits = cost <= room + 1e-9
    limit.retry = max(0, ceil((cost - room) / rate))
    local ttl = ceil(limit.capacity / rate) + 1000
    local function save(value)
        redis.call('SET', key, num(value) .. ':' .. now, 'PX', ttl)
    end
    limit.commit = function() save(after) end
    limit.give_back = function()
        if draining then save(max(0, level - cost))
        else save(min(limit.capacity, level + cost)) end
    end
end

local function read_limits()
    for i = 1, count do
        local at = 12 + (i - 1) * 7
        local algorithm, key = ARGV[at + 1], KEYS[tonumber(ARGV[at + 2])]
        local limit = {
            amount = tonumber(ARGV[at + 3]), period = tonumber(ARGV[at + 4]),
            capacity = tonumber(ARGV[at + 5]), shaping = ARGV[at + 6] == '1',
            delay = 0,
        }
        if algorithm == 'fw' then
            local start = now - now % limit.period
            counter(limit, key, start, start + limit.period)
        elseif algorithm == 'qd' or algorithm == 'qm' then
            local start, finish = calendar_period(now, tonumber(ARGV[at + 7]),
                algorithm == 'qm')
            counter(limit, key, start, finish)
        elseif algorithm == 'sw' then
            sliding(limit, key, KEYS[tonumber(ARGV[at + 2]) + 1])
        elseif algorithm == 'tb' then
            bucket(limit, key, false)
        elseif algorithm == 'lb' then
            bucket(limit, key, true)
        else
            return redis.error_reply('unknown algorithm ' .. tostring(algorithm))
        end
        limit.never = cost > limit.capacity
        limits[i] = limit
    end
end

-- The limit that decides: among refusals, one that can never pass, else the
-- longest wait; when all pass, the one with the least left.
local function decide(consuming)
    local chosen, refused = 0, false
    for i, limit in ipairs(limits) do
        local current = limits[chosen]
        if not limit.fits then
            if not refused or (limit.never and not current.never)
                or (current.never == limit.never and limit.retry > current.retry) then
                chosen, refused = i, true
            end
        elseif not refused and (chosen == 0 or limit.left < current.left) then
            chosen = i
        end
    end
    local reply = {refused and 0 or 1, 0, chosen, 0, 0, 0, 0, now}
    local limit = limits[chosen]
    if limit == nil then return reply end
    if refused then
        reply[2] = limit.never and 2 or 1
        reply[4] = max(0, limit.left)
        reply[5] = limit.never and -1 or max(0, limit.retry)
        reply[6] = max(0, limit.reset)
    else
        reply[4] = max(0, consuming and limit.left - cost or limit.left)
        reply[6] = max(0, consuming and limit.reset_hit or limit.reset)
        for _, each in ipairs(limits) do
            if each.shaping and consuming then reply[7] = max(reply[7], each.delay) end
        end
    end
    return reply
end

local function count_usage(allowed)
    if minute_ttl <= 0 or mode ~= 'hit' then return end
    local y, m, d = civil_from_days(floor(now / 86400000))
    local in_day = floor(now / 1000) % 86400
    local day = string.format('%04d%02d%02d', y, m, d)
    local minute = string.format('%s%02d%02d', day, floor(in_day / 3600),
        floor(in_day % 3600 / 60))
    local field = operation .. (allowed and ':a' or ':r')
    local extra = operation .. (allowed and ':ax' or ':rx')
    for _, bucket in ipairs({{usage_prefix .. ':m:' .. minute, minute_ttl},
                             {usage_prefix .. ':d:' .. day, day_ttl}}) do
        -- A new field may be the first of a new bucket: only then set its TTL.
        if redis.call('HINCRBY', bucket[1], field, 1) == 1 then
            redis.call('EXPIRE', bucket[1], bucket[2])
        end
        if cost > 1 then
            redis.call('HINCRBY', bucket[1], extra, cost - 1)
        end
    end
end

-- A refusal by a limit is a violation; enough of them within the window earn
-- a ban of base * factor^strikes (capped). Strikes decay one per quiet period.
local function strike(reply)
    if strikes_at <= 0 then return reply end
    local state = redis.call('HMGET', strikes_key, 'v', 'vs', 'strikes', 'last')
    local violations, since = tonumber(state[1]) or 0, tonumber(state[2]) or 0
    local strikes, last = tonumber(state[3]) or 0, tonumber(state[4]) or 0
    if now - since >= strike_window then violations, since = 0, now end
    violations = violations + 1
    local banned_until = 0
    if violations >= strikes_at then
        if strike_decay > 0 then
            strikes = max(0, strikes - floor((now - last) / strike_decay))
        end
        local length = min(ban_base * ban_factor ^ strikes, ban_max)
        banned_until = now + ceil(length)
        strikes, last, violations, since = strikes + 1, now, 0, now
        reply[2], reply[5] = 4, ceil(length)
    end
    redis.call('HSET', strikes_key, 'v', violations, 'vs', since,
        'strikes', strikes, 'last', last)
    local keep = max(banned_until - now, strike_window) + strike_decay * strikes
    redis.call('PEXPIRE', strikes_key, max(1, ceil(keep)))
    if banned_until > 0 then
        redis.call('SET', ban_key, banned_until, 'PXAT', banned_until)
    end
    return reply
end

-- The allow/deny entry and a running ban decide before any limit.
local entry = redis.call('MGET', acl_key, ban_key)
local listed = entry[1]
if listed == 'deny' then
    count_usage(false)
    return {0, 3, 0, 0, -1, 0, 0, now}
end

if listed ~= 'allow' and mode ~= 'refund' then
    local banned_until = tonumber(entry[2]) or 0
    if banned_until > now then
        count_usage(false)
        return {0, 4, 0, 0, banned_until - now, banned_until - now, 0, now}
    end
end

local failed = read_limits()
if failed then return failed end

if mode == 'refund' then
    for _, limit in ipairs(limits) do limit.give_back() end
    limits = {}
    read_limits()
    return decide(false)
end

if listed == 'allow' then
    local reply = decide(false)
    reply[1], reply[2], reply[5] = 1, 5, 0
    count_usage(true)
    return reply
end

local consuming = mode == 'hit'
local reply = decide(consuming)
if reply[1] == 1 then
    if consuming then
        for _, limit in ipairs(limits) do limit.commit() end
    end
    count_usage(true)
    return reply
end

count_usage(false)
if consuming and reply[2] == 1 then reply = strike(reply) end
return reply
