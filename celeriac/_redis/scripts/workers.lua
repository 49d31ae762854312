-- workers.lua: the workers announced within their ttl, dropping the expired ones.
--
-- KEYS[1] = <p>celeriac:workers (hash hostname -> JSON {info, last_seen}),
-- KEYS[2] = <p>celeriac:workers:exp (zset hostname, score = expiry in epoch seconds).
-- ARGV[1] = now. Returns {hostname, record, ...} of the live workers.

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
local live = redis.call('ZRANGE', KEYS[2], 0, -1)
local out = {}
for _, host in ipairs(live) do
  local record = redis.call('HGET', KEYS[1], host)
  if record then
    out[#out + 1] = host
    out[#out + 1] = record
  end
end
return out
