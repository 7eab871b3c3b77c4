-- Saves (or, with empty text, deletes) one user's draft for a room, keeping at
-- most ARGV[3] drafts per user.
-- KEYS[1] the user's drafts hash (room -> text)
-- ARGV[1] room, ARGV[2] text, ARGV[3] most drafts, ARGV[4] TTL (ms)
local drafts = KEYS[1]
if ARGV[2] == '' then
  redis.call('HDEL', drafts, ARGV[1])
  return 1
end
if redis.call('HEXISTS', drafts, ARGV[1]) == 0
  and redis.call('HLEN', drafts) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', drafts, ARGV[1], ARGV[2])
redis.call('PEXPIRE', drafts, ARGV[4])
return 1
