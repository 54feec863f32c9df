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
-- ARGV[6]  backoff, "0" (off) or six numbers separated by spaces: refusals
--          within the window that earn a ban, the window (ms), the first ban
--          (ms), the factor by which each strike lengthens the ban, the
--          longest ban (ms), the quiet time after which one strike is
--          forgiven (ms)
-- ARGV[7..] 5 per limit, in the order of their keys: algorithm, amount,
--          period (ms), capacity, option (lb: shaping 1/0; qd, qm: UTC offset
--          in seconds; otherwise 0)
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
--     hit 1 default 7200 3024000 0 tb 10 1000 2 0

local acl_key, ban_key, strikes_key, usage_prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, cost, operation = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local count = (#ARGV - 6) / 5

local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local match = string.match
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

-- Every call runs what follows, so it is written flat: no closures (creating
-- one per call costs Redis more than a command), one table per limit, the
-- list entry, the ban and every string state read by one MGET, and no
-- command that the outcome does not need.

-- Every limit's arguments and keys. A sliding window keeps its state in a
-- log and a hash; every other limit in one string, read by the MGET.
local limits, names, first = {}, {acl_key, ban_key}, 5
for i = 1, count do
    local at = 1 + i * 5
    local algorithm, option = ARGV[at + 1], tonumber(ARGV[at + 5])
    local limit = {
        algorithm = algorithm, key = KEYS[first],
        amount = tonumber(ARGV[at + 2]), period = tonumber(ARGV[at + 3]),
        capacity = tonumber(ARGV[at + 4]), shaping = algorithm == 'lb' and option == 1,
        offset = option, delay = 0,
    }
    if algorithm == 'sw' then
        limit.totals = KEYS[first + 1]
        first = first + 2
    else
        names[#names + 1] = limit.key
        limit.slot = #names
        first = first + 1
    end
    limits[i] = limit
end

local states = redis.call('MGET', unpack(names))
local listed = states[1]
local reply, usage = nil, nil  -- usage: count the request as allowed or refused

-- The allow/deny entry and a running ban decide before any limit.
if listed == 'deny' then
    reply, usage = {0, 3, 0, 0, -1, 0, 0, now}, false
elseif listed ~= 'allow' and mode ~= 'refund' then
    local banned_until = tonumber(states[2]) or 0
    if banned_until > now then
        reply = {0, 4, 0, 0, banned_until - now, banned_until - now, 0, now}
        usage = false
    end
end

-- Each limit is evaluated into its table:
--   left      units it can still admit now (may be < 0 after a shrink)
--   fits      whether `cost` fits now;  never: cost > capacity
--   retry     ms until `cost` would fit; reset, reset_hit: ms until full,
--             now and after this hit (a sliding window's reset is read only
--             when the answer needs it);  delay: shaping wait after this hit
--   and what a commit or a refund writes back.
-- A refund evaluates twice: to give back, then to answer from the new state.
local passes = reply == nil and (mode == 'refund' and 2 or 1) or 0
for pass = 1, passes do
    for i = 1, count do
        local limit = limits[i]
        local algorithm, capacity = limit.algorithm, limit.capacity
        if algorithm == 'sw' then
            local period, log = limit.period, limit.key
            local kept = redis.call('HMGET', limit.totals, 'n', 'seq')
            local used = tonumber(kept[1] or '0')
            limit.seq = tonumber(kept[2]) or 0
            -- Entries at or before now - period have left the window: drop
            -- them and their cost from the total, so it is the window's sum.
            -- The total is written back once: by the commit, or at the end.
            local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - period)
            if #gone > 0 then
                for j = 1, #gone do
                    used = used - tonumber(match(gone[j], ':(%d+)$'))
                end
                redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
                limit.pruned = true
            end
            limit.used = used
            limit.left = capacity - used
            limit.fits = used + cost <= capacity
            limit.reset_hit, limit.retry = period, 0
            if not limit.fits and cost <= capacity then
                -- Walk the log oldest first until enough cost will have left.
                local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
                local still = used
                for j = 1, #entries, 2 do
                    still = still - tonumber(match(entries[j], ':(%d+)$'))
                    if still + cost <= capacity then
                        limit.retry = tonumber(entries[j + 1]) + period - now
                        break
                    end
                end
            end
        else
            -- A string state "<a>:<b>": window start and count, or a
            -- bucket's level and the ms it was measured at.
            local a, b
            local state = states[limit.slot]
            if state then
                a, b = match(state, '^([^:]+):(.+)$')
                a, b = tonumber(a), tonumber(b)
            end
            if algorithm == 'tb' or algorithm == 'lb' then
                -- rate in units per ms; a token bucket starts full, a leaky
                -- one empty. Both are clamped to the capacity, so a shrunk
                -- limit takes effect at once.
                local rate = limit.amount / limit.period
                local elapsed = b and max(0, now - b) or 0
                local level, room, after
                if algorithm == 'lb' then
                    level = min(capacity, max(0, (a or 0) - elapsed * rate))
                    room = capacity - level
                    after = level + cost
                    limit.reset = ceil(level / rate)
                    limit.reset_hit = ceil(after / rate)
                    limit.delay = ceil(level / rate)
                    limit.refunded = max(0, level - cost)
                else
                    level = min(capacity, (a or capacity) + elapsed * rate)
                    room = level
                    after = level - cost
                    limit.reset = ceil((capacity - level) / rate)
                    limit.reset_hit = ceil((capacity - after) / rate)
                    limit.refunded = min(capacity, level + cost)
                end
                limit.after = after
                limit.left = floor(room + 1e-9)
                limit.fits = cost <= room + 1e-9
                limit.retry = max(0, ceil((cost - room) / rate))
                limit.ttl = ceil(capacity / rate) + 1000
            else
                local start, finish
                if algorithm == 'fw' then
                    start = now - now % limit.period
                    finish = start + limit.period
                elseif algorithm == 'qd' or algorithm == 'qm' then
                    start, finish = calendar_period(now, limit.offset,
                        algorithm == 'qm')
                else
                    return redis.error_reply('unknown algorithm '
                        .. tostring(algorithm))
                end
                local used = 0
                if a == start then used = b end
                limit.used, limit.start, limit.finish = used, start, finish
                limit.left = capacity - used
                limit.fits = used + cost <= capacity
                limit.retry = finish - now
                limit.reset = used > 0 and finish - now or 0
                limit.reset_hit = finish - now
            end
        end
        limit.never = cost > capacity
    end

    if pass < passes then
        -- Refund: give `cost` back to every limit, then read the new state.
        for i = 1, count do
            local limit = limits[i]
            local algorithm = limit.algorithm
            if algorithm == 'tb' or algorithm == 'lb' then
                redis.call('SET', limit.key, string.format('%.17g', limit.refunded)
                    .. ':' .. now, 'PX', limit.ttl)
            elseif algorithm == 'sw' then
                -- The newest entries first; split one if it holds more.
                local log, owed = limit.key, cost
                local entries = redis.call('ZREVRANGE', log, 0, -1, 'WITHSCORES')
                for j = 1, #entries, 2 do
                    if owed <= 0 then break end
                    local seq, units = match(entries[j], '^(%d+):(%d+)$')
                    units = tonumber(units)
                    redis.call('ZREM', log, entries[j])
                    if units > owed then
                        redis.call('ZADD', log, entries[j + 1],
                            seq .. ':' .. (units - owed))
                        units = owed
                    end
                    owed = owed - units
                end
                if limit.pruned or owed < cost then
                    redis.call('HSET', limit.totals, 'n', limit.used - (cost - owed))
                end
                limit.pruned = nil
            elseif limit.used > 0 then
                redis.call('SET', limit.key,
                    limit.start .. ':' .. max(0, limit.used - cost),
                    'PXAT', limit.finish)
            end
        end
        states = redis.call('MGET', unpack(names))
    end
end

if reply == nil then
    -- The limit that decides: among refusals, one that can never pass, else
    -- the longest wait; when all pass, the one with the least left.
    local chosen, refused, current = 0, false, nil
    for i = 1, count do
        local limit = limits[i]
        if not limit.fits then
            if not refused or (limit.never and not current.never)
                or (current.never == limit.never and limit.retry > current.retry) then
                chosen, refused, current = i, true, limit
            end
        elseif not refused and (chosen == 0 or limit.left < current.left) then
            chosen, current = i, limit
        end
    end
    -- Only a hit that is neither refused nor allow-listed consumes.
    local consuming = mode == 'hit' and not refused and listed ~= 'allow'

    if consuming then
        local delay = 0
        for i = 1, count do
            local limit = limits[i]
            local algorithm = limit.algorithm
            if limit.shaping then delay = max(delay, limit.delay) end
            if algorithm == 'tb' or algorithm == 'lb' then
                redis.call('SET', limit.key, string.format('%.17g', limit.after)
                    .. ':' .. now, 'PX', limit.ttl)
            elseif algorithm == 'sw' then
                local seq = limit.seq + 1
                redis.call('ZADD', limit.key, now, seq .. ':' .. cost)
                redis.call('HSET', limit.totals, 'n', limit.used + cost, 'seq', seq)
                redis.call('PEXPIRE', limit.key, limit.period)
                redis.call('PEXPIRE', limit.totals, limit.period)
            else
                redis.call('SET', limit.key, limit.start .. ':' .. (limit.used + cost),
                    'PXAT', limit.finish)
            end
        end
        if current == nil then
            reply = {1, 0, 0, 0, 0, 0, 0, now}
        else
            reply = {1, 0, chosen, max(0, current.left - cost), 0,
                max(0, current.reset_hit), delay, now}
        end
    else
        -- A sliding window that dropped old entries but consumed nothing
        -- still records its new total.
        for i = 1, count do
            local limit = limits[i]
            if limit.pruned then
                redis.call('HSET', limit.totals, 'n', limit.used)
            end
        end
        local reset = 0
        if current ~= nil then
            reset = current.reset
            if reset == nil then
                -- A sliding window is full again when its newest entry leaves.
                reset = 0
                if current.used > 0 then
                    local newest = redis.call('ZRANGE', current.key, -1, -1,
                        'WITHSCORES')
                    reset = tonumber(newest[2]) + current.period - now
                end
            end
        end
        if current == nil then
            reply = {1, 0, 0, 0, 0, 0, 0, now}
        elseif refused then
            reply = {0, current.never and 2 or 1, chosen, max(0, current.left),
                current.never and -1 or max(0, current.retry), max(0, reset), 0, now}
        else
            reply = {1, 0, chosen, max(0, current.left), 0, max(0, reset), 0, now}
        end
        if listed == 'allow' and mode ~= 'refund' then
            reply[1], reply[2], reply[5] = 1, 5, 0
        end
    end
    usage = reply[1] == 1
end

-- Usage counters of a hit, in the minute and day hashes of Redis time (UTC),
-- named YYYYMMDDhhmm and YYYYMMDD, made from numbers.
local minute_ttl = tonumber(ARGV[4])
if mode == 'hit' and minute_ttl > 0 and usage ~= nil then
    local y, m, d = civil_from_days(floor(now / 86400000))
    local day = (y * 100 + m) * 100 + d
    local in_day = floor(now / 60000) % 1440
    local minute_key = usage_prefix .. ':m:'
        .. (day * 10000 + floor(in_day / 60) * 100 + in_day % 60)
    local day_key = usage_prefix .. ':d:' .. day
    local field = operation .. (usage and ':a' or ':r')
    -- A new field may be the first of a new bucket: only then set its TTL.
    if redis.call('HINCRBY', minute_key, field, 1) == 1 then
        redis.call('EXPIRE', minute_key, minute_ttl)
    end
    if redis.call('HINCRBY', day_key, field, 1) == 1 then
        redis.call('EXPIRE', day_key, tonumber(ARGV[5]))
    end
    if cost > 1 then
        redis.call('HINCRBY', minute_key, field .. 'x', cost - 1)
        redis.call('HINCRBY', day_key, field .. 'x', cost - 1)
    end
end

-- A hit refused by a limit is a violation; enough of them within the window
-- earn a ban of base * factor^strikes (capped). Strikes decay one per quiet
-- period.
if mode == 'hit' and reply[2] == 1 and ARGV[6] ~= '0' then
    local strikes_at, strike_window, ban_base, ban_factor, ban_max, strike_decay =
        match(ARGV[6], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    strikes_at, strike_window = tonumber(strikes_at), tonumber(strike_window)
    ban_base, ban_factor = tonumber(ban_base), tonumber(ban_factor)
    ban_max, strike_decay = tonumber(ban_max), tonumber(strike_decay)
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
end
return reply
