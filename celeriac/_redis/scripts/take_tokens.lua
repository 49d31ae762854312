-- take_tokens.lua: take up to N whole tokens from a shared token bucket, as one atomic step
-- (global task rate limits, docs/decisions/0018-rate-limits.md).
--
-- KEYS[1] = <p>celeriac:bucket:<key>, a hash {t = tokens left, u = when counted, in the
-- server's epoch seconds}; it expires once the bucket would be full again (absent = full).
-- ARGV[1] = rate per second, ARGV[2] = capacity, ARGV[3] = tokens wanted.
-- Returns {granted, seconds until one more token (a string: Lua numbers reply as integers)}.
-- The clock is the Redis server's (TIME), one for every worker; a clock that went back
-- refills nothing.

local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = capacity
local state = redis.call('HMGET', KEYS[1], 't', 'u')
if state[1] and state[2] then
  local elapsed = now - tonumber(state[2])
  if elapsed < 0 then
    elapsed = 0
  end
  tokens = math.min(capacity, tonumber(state[1]) + elapsed * rate)
end
local granted = math.max(0, math.min(wanted, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
local wait = (1 - tokens) / rate
if wait < 0 then
  wait = 0
end
return {granted, string.format('%.17g', wait)}
