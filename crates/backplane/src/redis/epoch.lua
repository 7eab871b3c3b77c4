-- Shared prelude: the room's epoch, created (from the server clock, in
-- microseconds, so a later epoch is always larger) when the room has no state.
local function room_epoch(state, ttl)
  local epoch = redis.call('HGET', state, 'epoch')
  if not epoch then
    local now = redis.call('TIME')
    epoch = now[1] .. string.format('%06d', tonumber(now[2]))
    redis.call('HSET', state, 'epoch', epoch)
    redis.call('PEXPIRE', state, ttl)
  end
  return epoch
end

-- Shared prelude: the server clock in milliseconds.
local function redis_millis()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Shared prelude: how stale a room's expiries may get before a publish pushes
-- them back (1/64 of the shorter of max age and state TTL, in ms). Every
-- writer sets them to their bound plus this margin, so a room's history and
-- state always outlive their bounds past the last message.
local function expiry_margin(max_age, state_ttl)
  return math.max(1, math.floor(math.min(tonumber(max_age), tonumber(state_ttl)) / 64))
end
