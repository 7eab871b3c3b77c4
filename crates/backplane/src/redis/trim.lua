-- Shared prelude: forgets the overlays and change index entries of history
-- that was trimmed (at most 64 per call; later calls take the rest).
local function forget_trimmed(log, overlays, index)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  if not first then
    redis.call('DEL', overlays, index)
    return
  end
  local floor = string.match(first[1], '^(%d+)')
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. floor, 'LIMIT', 0, 64)) do
    redis.call('HDEL', overlays, string.match(member, ':(%d+)$'))
    redis.call('ZREM', index, member)
  end
end
