-- ack.lua: settle entries this consumer still owns: XACK and XDEL each.
--
-- An ack never deletes a message someone else holds: an entry another consumer took over after
-- our lease lapsed (XCLAIM in consume.lua moved it to that consumer's pending list) is left to
-- it, and an entry we requeued, or that a restarted worker of our node gave back for us
-- (both requeue.lua), lives on under a new id, so its old id is gone. An entry no longer pending at all is left alone
-- too (at-least-once: it is delivered again rather than lost). Key layout: see consume.lua.
--
-- KEYS: the stream of each entry (repeated as needed); ARGV: group, consumer, then one id per key.
-- Returns the number of entries settled.

local group, consumer = ARGV[1], ARGV[2]
local acked = 0
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if type(p) == 'table' and not p.err and p[1] and p[1][2] == consumer then
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
    acked = acked + 1
  end
end
return acked
