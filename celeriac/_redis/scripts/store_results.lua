-- store_results.lua: save a batch of result records in one round trip (the result backend).
--
-- Key layout (<p> = global_keyprefix): <p>celery-task-meta-<task id> holds the encoded record
-- exactly as Celery stores it (group records arrive keyed celery-taskset-meta-<id>); the record
-- is also published on a channel of the same name when its state is ready, which is what
-- waiters (ours and Celery's) subscribe to. <p>celeriac-task-state-<task id> holds the state
-- only for records whose state cannot be read from the payload itself (not Celery JSON).
--
-- KEYS: per record, its meta key and its state key.
-- ARGV: expiry in ms ('0': none), then per record: payload, publish ('1'/'0'), state ('' when
-- the payload tells it).

local px = ARGV[1]
for i = 1, #KEYS / 2 do
  local key, state_key = KEYS[2 * i - 1], KEYS[2 * i]
  local payload, publish, state = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  if px == '0' then
    redis.call('SET', key, payload)
  else
    redis.call('SET', key, payload, 'PX', px)
  end
  if state ~= '' then
    if px == '0' then
      redis.call('SET', state_key, state)
    else
      redis.call('SET', state_key, state, 'PX', px)
    end
  end
  if publish == '1' then
    redis.call('PUBLISH', key, payload)
  end
end
return #KEYS / 2
