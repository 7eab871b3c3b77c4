-- Records one user's token revocation, after forgetting those that ended.
-- KEYS[1] the revocations hash (user -> "<issued_before>:<until>")
-- KEYS[2] the same users by `until` (a sorted set, for forgetting)
-- KEYS[3] the version counter
-- ARGV[1] user, ARGV[2] issued_before, ARGV[3] until, ARGV[4] now, ARGV[5] most users
local ended = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
for i = 1, #ended, 1000 do
  redis.call('HDEL', KEYS[1], unpack(ended, i, math.min(i + 999, #ended)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
  and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
