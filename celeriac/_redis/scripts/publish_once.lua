-- publish_once.lua: publish a message unless its dedup key was used within the ttl, as one
-- atomic step (beat uses it so two schedulers never both fire one run).
--
-- KEYS[1] = <p>celeriac:once:<key> (string, expires after the ttl); KEYS[2] = the target: the
-- stream for a message due now, or the eta zset for a scheduled one (layout: see consume.lua).
-- ARGV: ttl_ms, kind ('stream' or 'eta'), then for a stream the field/value pairs, for an eta
-- zset the score and member.
-- Returns 1 when published, 0 when the key was already taken.

if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
if ARGV[2] == 'stream' then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
return 1
