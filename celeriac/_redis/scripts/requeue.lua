-- requeue.lua: give entries back so any consumer can take them now.
--
-- Each entry still owned by this consumer is copied to the end of its stream with field
-- n = deliveries so far (so the next delivery is flagged as a redelivery with the right
-- count), then acked and deleted, all atomically. Entries another consumer reclaimed after our
-- lease lapsed are left alone. Key layout: see consume.lua.
--
-- KEYS: the stream of each entry; ARGV: group, consumer, then (id, deliveries) per key.
-- deliveries "+k" means the entry's own n plus k (reclaiming a dead consumer's entries, whose
-- count only the pending list knows).
-- Returns the number of entries requeued.

local group, consumer = ARGV[1], ARGV[2]
local requeued = 0
for i, key in ipairs(KEYS) do
  local id, count = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if type(p) == 'table' and not p.err and p[1] and p[1][2] == consumer then
    local entry = redis.call('XRANGE', key, id, id)[1]
    if entry then
      local fields, earlier = {}, 0
      for f = 1, #entry[2], 2 do
        if entry[2][f] == 'n' then
          earlier = tonumber(entry[2][f + 1]) or 0
        else
          fields[#fields + 1] = entry[2][f]
          fields[#fields + 1] = entry[2][f + 1]
        end
      end
      if string.sub(count, 1, 1) == '+' then
        count = earlier + tonumber(string.sub(count, 2))
      end
      fields[#fields + 1] = 'n'
      fields[#fields + 1] = count
      redis.call('XADD', key, '*', unpack(fields))
      requeued = requeued + 1
    end
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
  end
end
return requeued
