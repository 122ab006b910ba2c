-- GCRA in one atomic step (after go-redis/redis_rate).
-- KEYS[1]: the bucket. ARGV: burst, rate (requests per period), period (s).
-- Returns {allowed 0|1, remaining, retry_after_s, reset_after_s}.
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])

local emission_interval = period / rate
local burst_offset = emission_interval * burst

-- Seconds since 2017 keep float precision at the microsecond.
local t = redis.call("TIME")
local now = (tonumber(t[1]) - 1483228800) + (tonumber(t[2]) / 1000000)

local tat = tonumber(redis.call("GET", key) or now)
if tat < now then tat = now end

local new_tat = tat + emission_interval
local allow_at = new_tat - burst_offset
local diff = now - allow_at

if diff < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now)}
end

local reset_after = new_tat - now
redis.call("SET", key, tostring(new_tat), "PX", math.ceil(reset_after * 1000))
return {1, math.floor(diff / emission_interval), "-1", tostring(reset_after)}
