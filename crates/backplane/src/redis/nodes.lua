-- The cluster's node registry: who is alive, with their last status.
-- KEYS[1] hash node id -> status; KEYS[2] sorted set node id -> expiry (ms, Redis clock)
-- ARGV[1] 'announce' | 'list' | 'withdraw'; ARGV[2] node id; ARGV[3] status; ARGV[4] TTL (ms)
-- Every call first forgets the nodes whose announcement ran out, so a crashed
-- node disappears within its TTL whoever asks.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
end
local op = ARGV[1]
if op == 'announce' then
  local ttl = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  -- The registry itself goes away when no node announces any more.
  redis.call('PEXPIRE', KEYS[1], ttl * 4)
  redis.call('PEXPIRE', KEYS[2], ttl * 4)
  return 1
elseif op == 'withdraw' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
return redis.call('HVALS', KEYS[1])
