-- limit_hit.lua: check, consume or refund several rate limits of one subject,
-- all or nothing, with the subject's allow/deny entry and ban checked first.
--
-- KEYS[1]  list entry   rl:{<s>}:acl      string "allow" or "deny" (absent: neither)
-- KEYS[2]  ban          rl:{<s>}:ban      string: the ban's end (ms); expires then
-- KEYS[3]  strikes      rl:{<s>}:strikes  hash v, vs (refusals in the window and
--          its start, ms), strikes, last (ms of the last ban)
-- KEYS[4]  usage prefix rl:{<s>}:use      never read itself; the script appends
--          ":<YYYYMMDD>" (the UTC day) to name the day's usage hash. Same hash
--          tag, so the same cluster slot.
-- KEYS[5..] limit state, in the order the limits name them: a string
--          "<window start ms>:<count>" (fixed window, quota) or
--          "<level>:<ms of level>" (buckets); a sliding window uses two keys,
--          its log zset (member "<seq>:<cost>", score ms), then a hash with
--          the running total n and the entry counter seq
--
-- ARGV[1]  mode: "hit" (consume), "peek" (answer only) or "refund" (give back)
-- ARGV[2]  cost in units, integer >= 1 (peek: >= 0)
-- ARGV[3]  operation name; the day's usage hash counts a hit in the field
--          <op>:<hhmm>:a or <op>:<hhmm>:r (allowed or refused requests in
--          that UTC minute) and, when the cost exceeds 1, <op>:<hhmm>:ax or
--          <op>:<hhmm>:rx (their cost beyond 1 each; cost = requests + extra)
-- ARGV[4]  usage retention, seconds after the end of its UTC day ("0": count
--          no usage)
-- ARGV[5]  backoff, "0" (off) or six numbers separated by spaces: refusals
--          within the window that earn a ban, the window (ms), the first ban
--          (ms), the factor by which each strike lengthens the ban, the
--          longest ban (ms), the quiet time after which one strike is
--          forgiven (ms)
-- ARGV[6..] 5 per limit, in the order of their keys: algorithm, amount,
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
--     hit 1 default 3024000 0 tb 10 1000 2 0

local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local find, sub, format = string.find, string.sub, string.format

local mode, cost = ARGV[1], tonumber(ARGV[2])
local count = (#ARGV - 5) / 5
-- Now in ms, first as text: seconds, then the first 3 of 6 microsecond
-- digits. Text is what the state strings need, and making it from a number
-- (a printf inside Redis) would cost more than a command.
local time = redis.call('TIME')
local now_text = time[1] .. sub('00000' .. time[2], -6, -4)
local now = tonumber(now_text)

-- calendar begin: proleptic Gregorian dates <-> days since 1970-01-01
-- (H. Hinnant's civil_from_days / days_from_civil), so months have their
-- real lengths and leap years are right. Every hit counts usage under its
-- UTC day, so these divide as (a - a % b) / b: floor division in plain
-- arithmetic, without calling into C.
local function civil_from_days(z)
    z = z + 719468
    local doe = z % 146097
    local era = (z - doe) / 146097
    local yoe = doe - (doe - doe % 1460) / 1460 + (doe - doe % 36524) / 36524
        - (doe - doe % 146096) / 146096
    yoe = (yoe - yoe % 365) / 365
    local doy = doe - (365 * yoe + (yoe - yoe % 4) / 4 - (yoe - yoe % 100) / 100)
    local mp = 5 * doy + 2
    mp = (mp - mp % 153) / 153
    local d = 153 * mp + 2
    d = doy - (d - d % 5) / 5 + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400
    if m <= 2 then y = y + 1 end
    return y, m, d
end

-- The calendar period around `at_ms` in a zone `offset` seconds east of UTC:
-- its start and end, in ms since the epoch.
local function calendar_period(at_ms, offset, monthly)
    local function days_from_civil(y, m, d)
        if m <= 2 then y = y - 1 end
        local yoe = y % 400
        local era = (y - yoe) / 400
        local doy = 153 * ((m + 9) % 12) + 2
        doy = (doy - doy % 5) / 5 + d - 1
        local doe = yoe * 365 + (yoe - yoe % 4) / 4 - (yoe - yoe % 100) / 100 + doy
        return era * 146097 + doe - 719468
    end

    local seconds = (at_ms - at_ms % 1000) / 1000 + offset
    local day = (seconds - seconds % 86400) / 86400
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

-- Every call runs what follows, so it is written for the common path: one
-- MGET reads the list entry, the ban and every limit's state key (it answers
-- nil for a sliding window's keys); limits are evaluated into locals, not
-- tables (a table costs Redis about as much as printing two numbers); the
-- deciding limit is chosen as they are evaluated; and no command runs that
-- the outcome does not need.
-- states[1], states[2]: list entry and ban; states[k - 2]: KEYS[k], k >= 5.
local states = redis.call('MGET', KEYS[1], KEYS[2], unpack(KEYS, 5))
local listed = states[1]
local reply, usage = nil, nil  -- usage: count the request as allowed or refused

-- The allow/deny entry and a running ban decide before any limit.
if listed == 'deny' then
    reply, usage = {0, 3, 0, 0, -1, 0, 0, now}, false
elseif listed ~= 'allow' and mode ~= 'refund' and states[2] then
    local banned_until = tonumber(states[2])
    if banned_until > now then
        reply = {0, 4, 0, 0, banned_until - now, banned_until - now, 0, now}
        usage = false
    end
end

-- The deciding limit, chosen as the limits are evaluated: among refusals,
-- one that can never pass, else the longest wait; when all pass, the one
-- with the least left. Its numbers (see the loop) are kept in c_*; a
-- sliding window's reset is worked out only when the answer needs it.
local chosen, refused, c_never, c_retry, c_left, c_reset, c_reset_hit = 0, false
local c_key, c_period, c_used
-- What a hit commits: key, value, PX or PXAT and its time, or KEEPTTL and
-- false. The first write waits in w_* (one limit is the common case), any
-- further ones in a flat list.
local w_key, w_value, w_expiry, w_time
local writes, pending = nil, 0
local delay = 0
-- A sliding window's state that its commit needs, by its index.
local windows = nil

-- Writes a string state with its expiry: PX or PXAT and a time, or KEEPTTL.
local function set_state(key, value, expiry, expires)
    if expires then
        redis.call('SET', key, value, expiry, expires)
    else
        redis.call('SET', key, value, expiry)
    end
end

-- Each limit is evaluated into:
--   left      units it can still admit now (may be < 0 after a shrink)
--   fits      whether `cost` fits now;  never: cost > capacity
--   retry     ms until `cost` would fit; reset, reset_hit: ms until full,
--             now and after this hit;  and what a commit or a refund writes.
-- A refund evaluates twice: to give back, then to answer from the new state.
local passes = reply == nil and (mode == 'refund' and 2 or 1) or 0
local committing = mode == 'hit' and listed ~= 'allow'
for pass = 1, passes do
    local refunding = pass < passes
    local k = 5
    for i = 1, count do
        local at = i * 5 + 1
        local algorithm, capacity = ARGV[at], tonumber(ARGV[at + 3])
        local key = KEYS[k]
        local left, fits, retry, reset, reset_hit
        local value, expiry, expires = nil, 'PX', 0
        local used, period = 0, nil
        if algorithm == 'sw' then
            period = tonumber(ARGV[at + 2])
            local totals = KEYS[k + 1]
            k = k + 2
            local kept = redis.call('HMGET', totals, 'n', 'seq')
            used = tonumber(kept[1] or '0')
            local seq = tonumber(kept[2]) or 0
            -- Entries at or before now - period have left the window: drop
            -- them and their cost from the total, so it is the window's sum.
            -- The total is written back once: by the commit, or at the end.
            local pruned = false
            local gone = redis.call('ZRANGEBYSCORE', key, '-inf', now - period)
            if #gone > 0 then
                for j = 1, #gone do
                    used = used - tonumber(string.match(gone[j], ':(%d+)$'))
                end
                redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
                pruned = true
            end
            left = capacity - used
            fits = used + cost <= capacity
            reset_hit, retry = period, 0
            if not fits and cost <= capacity then
                -- Walk the log oldest first until enough cost will have left.
                local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
                local still = used
                for j = 1, #entries, 2 do
                    still = still - tonumber(string.match(entries[j], ':(%d+)$'))
                    if still + cost <= capacity then
                        retry = tonumber(entries[j + 1]) + period - now
                        break
                    end
                end
            end
            windows = windows or {}
            windows[i] = {key, totals, used, seq, pruned, period}
            if refunding then
                -- The newest entries first; split one if it holds more.
                local owed = cost
                local entries = redis.call('ZREVRANGE', key, 0, -1, 'WITHSCORES')
                for j = 1, #entries, 2 do
                    if owed <= 0 then break end
                    local entry_seq, units = string.match(entries[j], '^(%d+):(%d+)$')
                    units = tonumber(units)
                    redis.call('ZREM', key, entries[j])
                    if units > owed then
                        redis.call('ZADD', key, entries[j + 1],
                            entry_seq .. ':' .. (units - owed))
                        units = owed
                    end
                    owed = owed - units
                end
                if pruned or owed < cost then
                    redis.call('HSET', totals, 'n', used - (cost - owed))
                end
                windows[i] = nil
            end
        else
            -- A string state "<a>:<b>": window start and count, or a
            -- bucket's level and the ms it was measured at.
            local a, b
            local state = states[k - 2]
            k = k + 1
            if state then
                local colon = find(state, ':', 1, true)
                a = tonumber(sub(state, 1, colon - 1))
                b = tonumber(sub(state, colon + 1))
            end
            if algorithm == 'tb' or algorithm == 'lb' then
                -- rate in units per ms; a token bucket starts full, a leaky
                -- one empty. Both are clamped to the capacity, so a shrunk
                -- limit takes effect at once.
                local rate = ARGV[at + 1] / ARGV[at + 2]
                local elapsed = b and max(0, now - b) or 0
                local level, room, after
                if algorithm == 'lb' then
                    level = min(capacity, max(0, (a or 0) - elapsed * rate))
                    room = capacity - level
                    after = level + cost
                    reset = ceil(level / rate)
                    reset_hit = ceil(after / rate)
                    if ARGV[at + 4] == '1' then delay = max(delay, reset) end
                    value = refunding and max(0, level - cost)
                        or committing and after
                else
                    level = min(capacity, (a or capacity) + elapsed * rate)
                    room = level
                    after = level - cost
                    reset = ceil((capacity - level) / rate)
                    reset_hit = ceil((capacity - after) / rate)
                    value = refunding and min(capacity, level + cost)
                        or committing and after
                end
                left = floor(room + 1e-9)
                fits = cost <= room + 1e-9
                retry = max(0, ceil((cost - room) / rate))
                if value then
                    -- %.17g keeps every bit of a fractional level; a whole
                    -- one (a full bucket, say) prints for less as %d.
                    value = format(value % 1 == 0 and '%d:' or '%.17g:', value)
                        .. now_text
                    expires = ceil(capacity / rate) + 1000
                end
            else
                local start, finish
                if algorithm == 'fw' then
                    period = tonumber(ARGV[at + 2])
                    start = now - now % period
                    finish = start + period
                elseif algorithm == 'qd' or algorithm == 'qm' then
                    start, finish = calendar_period(now, tonumber(ARGV[at + 4]),
                        algorithm == 'qm')
                else
                    return redis.error_reply('unknown algorithm '
                        .. tostring(algorithm))
                end
                if a == start then used = b end
                left = capacity - used
                fits = used + cost <= capacity
                retry = finish - now
                reset = used > 0 and finish - now or 0
                reset_hit = finish - now
                -- The key expires when its window ends: only a new window
                -- sets that time.
                if a == start then
                    expiry, expires = 'KEEPTTL', false
                else
                    expiry, expires = 'PXAT', finish
                end
                if committing and not refunding then
                    value = format('%d:%d', start, used + cost)
                elseif refunding and used > 0 then
                    value = format('%d:%d', start, max(0, used - cost))
                end
            end
        end

        if refunding then
            if value then set_state(key, value, expiry, expires) end
        else
            local never = cost > capacity
            if not fits then
                if not refused or (never and not c_never)
                    or (c_never == never and retry > c_retry) then
                    chosen, refused, c_never, c_retry = i, true, never, retry
                    c_left, c_reset, c_reset_hit = left, reset, reset_hit
                    c_key, c_period, c_used = key, period, used
                end
            elseif not refused and (chosen == 0 or left < c_left) then
                chosen, c_never, c_retry = i, never, retry
                c_left, c_reset, c_reset_hit = left, reset, reset_hit
                c_key, c_period, c_used = key, period, used
            end
            if not value then
                -- nothing to commit for this limit
            elseif w_key == nil then
                w_key, w_value, w_expiry, w_time = key, value, expiry, expires
            else
                -- Sized for two more limits at once: growing costs more.
                writes = writes
                    or {false, false, false, false, false, false, false, false}
                writes[pending + 1], writes[pending + 2] = key, value
                writes[pending + 3], writes[pending + 4] = expiry, expires
                pending = pending + 4
            end
        end
    end
    if refunding then
        states = redis.call('MGET', KEYS[1], KEYS[2], unpack(KEYS, 5))
        delay = 0
    end
end

if reply == nil then
    -- Only a hit that is neither refused nor allow-listed consumes.
    if committing and not refused then
        if w_key then set_state(w_key, w_value, w_expiry, w_time) end
        for j = 1, pending, 4 do
            set_state(writes[j], writes[j + 1], writes[j + 2], writes[j + 3])
        end
        if windows then
            for _, window in pairs(windows) do
                local log, totals, used, seq, _, period = unpack(window)
                seq = seq + 1
                redis.call('ZADD', log, now, seq .. ':' .. cost)
                redis.call('HSET', totals, 'n', used + cost, 'seq', seq)
                redis.call('PEXPIRE', log, period)
                redis.call('PEXPIRE', totals, period)
            end
        end
        if chosen == 0 then
            reply = {1, 0, 0, 0, 0, 0, 0, now}
        else
            reply = {1, 0, chosen, max(0, c_left - cost), 0, max(0, c_reset_hit),
                delay, now}
        end
    else
        -- A sliding window that dropped old entries but consumed nothing
        -- still records its new total.
        if windows then
            for _, window in pairs(windows) do
                if window[5] then redis.call('HSET', window[2], 'n', window[3]) end
            end
        end
        local reset = c_reset
        if chosen > 0 and reset == nil then
            -- A sliding window is full again when its newest entry leaves.
            reset = 0
            if c_used > 0 then
                local newest = redis.call('ZRANGE', c_key, -1, -1, 'WITHSCORES')
                reset = tonumber(newest[2]) + c_period - now
            end
        end
        if chosen == 0 then
            reply = {1, 0, 0, 0, 0, 0, 0, now}
        elseif refused then
            reply = {0, c_never and 2 or 1, chosen, max(0, c_left),
                c_never and -1 or max(0, c_retry), max(0, reset), 0, now}
        else
            reply = {1, 0, chosen, max(0, c_left), 0, max(0, reset), 0, now}
        end
        if listed == 'allow' and mode ~= 'refund' then
            reply[1], reply[2], reply[5] = 1, 5, 0
        end
    end
    usage = reply[1] == 1
end

-- Usage counters of a hit: one field per operation, UTC minute and outcome
-- in the hash of the UTC day, so one command counts a hit. YYYYMMDDhhmm is
-- printed as one number and cut in two: printing numbers is what costs here.
if mode == 'hit' and usage ~= nil and ARGV[4] ~= '0' then
    local minutes = (now - now % 60000) / 60000
    local in_day = minutes % 1440
    local day = (minutes - in_day) / 1440
    local y, m, d = civil_from_days(day)
    local stamp = format('%d', ((y * 100 + m) * 100 + d) * 10000
        + (in_day - in_day % 60) / 60 * 100 + in_day % 60)
    local day_key = KEYS[4] .. ':' .. sub(stamp, 1, 8)
    local field = ARGV[3] .. ':' .. sub(stamp, 9) .. (usage and ':a' or ':r')
    -- A new field (the first count of a minute) may be the first of a new
    -- day: only then set the hash's expiry, the same for the whole day.
    if redis.call('HINCRBY', day_key, field, '1') == 1 then
        redis.call('EXPIREAT', day_key, (day + 1) * 86400 + tonumber(ARGV[4]))
    end
    if cost > 1 then
        redis.call('HINCRBY', day_key, field .. 'x', cost - 1)
    end
end

-- A hit refused by a limit is a violation; enough of them within the window
-- earn a ban of base * factor^strikes (capped). Strikes decay one per quiet
-- period.
if mode == 'hit' and reply[2] == 1 and ARGV[5] ~= '0' then
    local strikes_at, strike_window, ban_base, ban_factor, ban_max, strike_decay =
        string.match(ARGV[5], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    strikes_at, strike_window = tonumber(strikes_at), tonumber(strike_window)
    ban_base, ban_factor = tonumber(ban_base), tonumber(ban_factor)
    ban_max, strike_decay = tonumber(ban_max), tonumber(strike_decay)
    local strikes_key, ban_key = KEYS[3], KEYS[2]
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
