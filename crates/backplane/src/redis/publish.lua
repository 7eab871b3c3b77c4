-- Stores a room's next message and relays it, atomically.
-- KEYS[1] room state hash (epoch, seq), KEYS[2] history stream,
-- KEYS[3] overlays hash, KEYS[4] change index zset, KEYS[5] dedup key (optional)
-- ARGV[1] channel, ARGV[2] envelope, ARGV[3] accepted at (ms), ARGV[4] message id,
-- ARGV[5] max length, ARGV[6] max age (ms), ARGV[7] state TTL (ms),
-- ARGV[8] dedup window (ms), ARGV[9] reply stored for retries, ARGV[10] sender
local state, log, dedup = KEYS[1], KEYS[2], KEYS[5]
if dedup then
  local prior = redis.call('GET', dedup)
  if prior then
    return {'dup', room_epoch(state, ARGV[7]), prior}
  end
end
local epoch = room_epoch(state, ARGV[7])
local seq = redis.call('HINCRBY', state, 'seq', 1)
redis.call('XADD', log, 'MAXLEN', '~', ARGV[5], string.format('%d-0', seq),
  'm', ARGV[2], 't', ARGV[3], 'i', ARGV[4], 'u', ARGV[10])
-- Trim by age now and then: the oldest entries older than the cutoff go.
if seq % 32 == 0 then
  local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[6])
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  if first and tonumber(first[2][4]) < cutoff then
    local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
    local minid = nil
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= cutoff then
        minid = entry[1]
        break
      end
    end
    if not minid then
      minid = string.format('%d-0', tonumber(string.match(batch[#batch][1], '^(%d+)')) + 1)
    end
    redis.call('XTRIM', log, 'MINID', minid)
  end
  forget_trimmed(log, KEYS[3], KEYS[4])
end
redis.call('PEXPIRE', log, ARGV[6])
redis.call('PEXPIRE', state, ARGV[7])
if dedup then
  redis.call('SET', dedup, string.format('%d:', seq) .. ARGV[9], 'PX', ARGV[8])
end
redis.call('PUBLISH', ARGV[1], epoch .. string.format(':%d:', seq) .. ARGV[2])
return {'new', epoch, seq}
