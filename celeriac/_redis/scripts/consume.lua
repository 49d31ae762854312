-- consume.lua: claim up to `max` messages for one consumer in one round trip.
--
-- Key layout (<p> = global_keyprefix, <q> = queue name, <s> = priority step 0..9):
--   <p>celeriac:q:<q>:<s>   stream, consumer group "celeriac"; entry fields
--                           h=headers (JSON) p=properties (JSON) b=body t=content_type
--                           e=content_encoding [n=earlier deliveries, set by requeue]
--   <p>celeriac:eta:<q>     zset of scheduled messages, score = eta (epoch seconds), member =
--                           <priority digit><8-byte nonce> then h, p, b, t, e each framed
--                           as a 4-byte big-endian length + bytes
--   <p>celeriac:rejected    list of rejected-message records, newest first: queue, reason,
--                           time, h, p, b, t, e, framed as above
--
-- KEYS: for each queue, in the caller's order: its eta zset, then its S streams from the
--       highest priority step down (so queue i's stream j is KEYS[(i-1)*(S+1)+1+j]); last,
--       the rejected list.
-- ARGV: group, consumer, max, now (epoch s), reclaim (1/0), lease_ms, Q, S, pmap, stale_ms,
--       max_rejected (records kept), body_max_bytes (of a record's body), then the Q queue
--       names. pmap: 10 digits; digit p+1 is the stream index j-1 that priority p goes to.
--
-- Steps: (1) move due scheduled messages into their streams (a member that cannot be split,
-- written by hand or cut short, is removed and recorded on the rejected list with the reason
-- and at most body_max_bytes of it, rather than failing every claim); (2) when `reclaim` is 1, take
-- over entries idle (unrenewed) for more than lease_ms from any consumer, and forget consumers
-- idle for stale_ms that hold nothing; (3) read new entries, highest priority step first and,
-- within a step, queues in the caller's order. A missing group (first use, or Redis restarted
-- empty) is created at id 0 so entries published before it existed are still delivered; a
-- call that finds nothing has read (so created) every stream, which a blocking XREADGROUP on
-- all of them then relies on.
--
-- Returns {next_eta or false, batch, ...}; a batch is {key_index, entries[, deliveries]} with
-- entries as XREADGROUP returns them ({id, {field, value, ...}}) and, for reclaimed entries, their
-- delivery counts (new entries have been delivered once).

local group, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local now = ARGV[4]
local reclaim = ARGV[5] == '1'
local lease_ms = tonumber(ARGV[6])
local nqueues, nsteps = tonumber(ARGV[7]), tonumber(ARGV[8])
local pmap = ARGV[9]
local stale_ms = tonumber(ARGV[10])
local max_rejected, body_max = tonumber(ARGV[11]), tonumber(ARGV[12])
local rejected_key = KEYS[nqueues * (nsteps + 1) + 1]
local out = {false}

local function stream_index(q, j)
  return (q - 1) * (nsteps + 1) + 1 + j
end

-- (1) promote due scheduled messages
-- A member's priority digit and its five parts, or nil and why it cannot be split.
local function split_member(m)
  if #m < 10 then return nil, 'shorter than its 9-byte head' end
  local prio = string.byte(m, 1) - 48
  if prio < 0 or prio > 9 then return nil, 'first byte is not a priority digit' end
  local f, pos = {}, 10
  for i = 1, 5 do
    if pos + 3 > #m then return nil, 'cut short before part ' .. i end
    local ok, len = pcall(struct.unpack, '>I4', m, pos)
    if not ok then return nil, 'length of part ' .. i .. ' unreadable' end
    pos = pos + 4
    if pos + len - 1 > #m then return nil, 'part ' .. i .. ' runs past the end' end
    f[i] = string.sub(m, pos, pos + len - 1)
    pos = pos + len
  end
  if pos ~= #m + 1 then return nil, 'trailing bytes after part 5' end
  return prio, f
end

local function framed(parts)
  local buf = {}
  for i, part in ipairs(parts) do buf[i] = struct.pack('>I4', #part) .. part end
  return table.concat(buf)
end

local function dead_letter(queue, m, why)
  local reason = 'InvalidTaskError: malformed scheduled message: ' .. why
  local body = m
  if #m > body_max then
    body = string.sub(m, 1, body_max)
    reason = reason .. ' [body truncated: kept ' .. body_max .. ' of ' .. #m .. ' bytes]'
  end
  redis.call('LPUSH', rejected_key, framed({queue, reason, now, '{}', '{}', body,
    'application/octet-stream', 'binary'}))
  redis.call('LTRIM', rejected_key, 0, max_rejected - 1)
end

local next_eta = nil
for q = 1, nqueues do
  local eta_key = KEYS[(q - 1) * (nsteps + 1) + 1]
  local due = redis.call('ZRANGEBYSCORE', eta_key, '-inf', now, 'LIMIT', 0, 1000)
  for _, m in ipairs(due) do
    local prio, f = split_member(m)
    if prio then
      local j = string.byte(pmap, prio + 1) - 47
      redis.call('XADD', KEYS[stream_index(q, j)], '*',
        'h', f[1], 'p', f[2], 'b', f[3], 't', f[4], 'e', f[5])
    else
      dead_letter(ARGV[12 + q], m, f)
    end
    redis.call('ZREM', eta_key, m)
  end
  local first = redis.call('ZRANGE', eta_key, 0, 0, 'WITHSCORES')
  if first[2] and (next_eta == nil or tonumber(first[2]) < tonumber(next_eta)) then
    next_eta = first[2]
  end
end
if next_eta then out[1] = next_eta end

-- (2) reclaim entries whose lease lapsed
local function forget_stale_consumers(key)
  local consumers = redis.pcall('XINFO', 'CONSUMERS', key, group)
  if type(consumers) ~= 'table' or consumers.err then return end
  for _, c in ipairs(consumers) do
    local info = {}
    for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
    if info['pending'] == 0 and info['idle'] > stale_ms and info['name'] ~= consumer then
      redis.call('XGROUP', 'DELCONSUMER', key, group, info['name'])
    end
  end
end

if reclaim then
  for j = 1, nsteps do
    for q = 1, nqueues do
      local ki = stream_index(q, j)
      if remaining > 0 then
        local idle = redis.pcall('XPENDING', KEYS[ki], group, 'IDLE', lease_ms, '-', '+', remaining)
        if type(idle) == 'table' and not idle.err and #idle > 0 then
          local ids, counts = {}, {}
          for i, e in ipairs(idle) do
            ids[i] = e[1]
            counts[e[1]] = e[4]
          end
          -- XCLAIM re-checks the idle time, so an entry renewed meanwhile stays put; entries
          -- deleted from the stream are dropped from the pending list and not returned.
          local claimed = redis.call('XCLAIM', KEYS[ki], group, consumer, lease_ms, unpack(ids))
          local entries, delivered = {}, {}
          for _, e in ipairs(claimed) do
            if e[2] then
              entries[#entries + 1] = e
              delivered[#delivered + 1] = counts[e[1]] + 1
            end
          end
          if #entries > 0 then
            out[#out + 1] = {ki, entries, delivered}
            remaining = remaining - #entries
          end
        end
      end
      forget_stale_consumers(KEYS[ki])
    end
  end
end

-- (3) read new entries
local function read(key, count)
  local r = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>')
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'NOGROUP', 1, true) then error(r.err) end
    redis.pcall('XGROUP', 'CREATE', key, group, '0', 'MKSTREAM')
    r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>')
  end
  return r
end

for j = 1, nsteps do
  for q = 1, nqueues do
    local ki = stream_index(q, j)
    if remaining > 0 then
      local r = read(KEYS[ki], remaining)
      if r then
        -- The entries go back as XREADGROUP gave them: no per-entry work in Lua.
        out[#out + 1] = {ki, r[1][2]}
        remaining = remaining - #r[1][2]
      end
    end
  end
end

return out
