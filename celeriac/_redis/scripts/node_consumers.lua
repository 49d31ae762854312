-- node_consumers.lua: the consumers of one worker node that still hold entries.
--
-- Consumer names are node|machine|pid|token (brokers/base.py consumer_name); the caller decides
-- which of them are dead and requeues their entries (requeue.lua). Key layout: see consume.lua.
--
-- KEYS: streams; ARGV: group, prefix (the node name and the separator).
-- Returns {key_index, consumer, ...} for every consumer whose name starts with the prefix and
-- holds pending entries. Streams or groups that do not exist yet are skipped.

local group, prefix = ARGV[1], ARGV[2]
local out = {}
for i, key in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', key, group)
  if type(consumers) == 'table' and not consumers.err then
    for _, c in ipairs(consumers) do
      local info = {}
      for f = 1, #c, 2 do info[c[f]] = c[f + 1] end
      if info['pending'] > 0 and string.sub(info['name'], 1, #prefix) == prefix then
        out[#out + 1] = i
        out[#out + 1] = info['name']
      end
    end
  end
end
return out
