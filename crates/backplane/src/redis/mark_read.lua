-- Moves a user's read marker in a room forward (never back) and relays the
-- receipt signal when it moved.
-- KEYS[1] room state hash, KEYS[2] read markers hash (user -> "epoch:seq")
-- ARGV[1] user, ARGV[2] epoch, ARGV[3] seq, ARGV[4] room channel,
-- ARGV[5] signal payload, ARGV[6] state TTL (ms)
local state, reads = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', state, 'epoch') or '0'
local head = tonumber(redis.call('HGET', state, 'seq') or '0')
if epoch ~= ARGV[2] then
  return {'epoch', epoch, head}
end
local seq = tonumber(ARGV[3])
if seq > head then
  return {'beyond', epoch, head}
end
local current = 0
local stored = redis.call('HGET', reads, ARGV[1])
if stored then
  local e, s = string.match(stored, '^(%d+):(%d+)$')
  if e == epoch then current = tonumber(s) end
end
if seq <= current then
  return {'same', epoch, current}
end
redis.call('HSET', reads, ARGV[1], epoch .. ':' .. ARGV[3])
redis.call('PEXPIRE', reads, ARGV[6])
redis.call(PUBLISH, ARGV[4], '0:0:' .. ARGV[5])
return {'moved', epoch, seq}
