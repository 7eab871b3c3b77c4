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
