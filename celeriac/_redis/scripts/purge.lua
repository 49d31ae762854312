-- purge.lua: delete every waiting (unread or scheduled) message of some queues; claimed
-- entries stay with their consumers. Key layout: see consume.lua.
--
-- Unread entries are those after the group's last-delivered id; a stream without the group has
-- never been read, so all of it is waiting.
--
-- KEYS: eta zsets and streams of the queues, in any order; ARGV: group.
-- Returns the number of messages deleted.

local group = ARGV[1]
local deleted = 0

local function last_delivered(key)
  local groups = redis.pcall('XINFO', 'GROUPS', key)
  if type(groups) ~= 'table' or groups.err then return nil end
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == group then return info['last-delivered-id'] end
  end
  return nil
end

for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'zset' then
    deleted = deleted + redis.call('ZCARD', key)
    redis.call('DEL', key)
  elseif kind == 'stream' then
    local last = last_delivered(key)
    if last == nil then
      deleted = deleted + redis.call('XLEN', key)
      redis.call('DEL', key)
    else
      while true do
        local entries = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1000)
        if #entries == 0 then break end
        local ids = {}
        for i, e in ipairs(entries) do ids[i] = e[1] end
        deleted = deleted + redis.call('XDEL', key, unpack(ids))
        last = ids[#ids]
      end
    end
  end
end
return deleted
