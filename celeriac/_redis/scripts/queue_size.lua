-- queue_size.lua: messages waiting on one queue (ready or scheduled, not claimed).
--
-- A stream holds only unread and pending (claimed, unacked) entries, because ack, reject and
-- requeue delete what they settle; so ready = XLEN - pending count. Key layout: see consume.lua.
--
-- KEYS: the queue's eta zset, then its streams; ARGV: group. Returns the count.

local group = ARGV[1]
local total = redis.call('ZCARD', KEYS[1])
for i = 2, #KEYS do
  local len = redis.call('XLEN', KEYS[i])
  if len > 0 then
    local summary = redis.pcall('XPENDING', KEYS[i], group)
    local pending = 0
    if type(summary) == 'table' and not summary.err then pending = summary[1] end
    if len > pending then total = total + len - pending end
  end
end
return total
