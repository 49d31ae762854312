-- renew.lua: extend the leases of entries this consumer still owns.
--
-- A lease is the idle time of a pending entry (see consume.lua for the key layout): entries
-- idle for longer than the lease may be taken over by any consumer. XCLAIM ... JUSTID to
-- ourselves resets the idle time without counting a delivery. The owner check comes first so
-- an entry another consumer already reclaimed is never taken back from it.
--
-- KEYS: the stream of each entry (repeated as needed); ARGV: group, consumer, then one id per key.
-- Returns the number of leases renewed.

local group, consumer = ARGV[1], ARGV[2]
local renewed = 0
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if type(p) == 'table' and not p.err and p[1] and p[1][2] == consumer then
    redis.call('XCLAIM', key, group, consumer, 0, id, 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
