-- Who is in a room, across nodes: one entry per (node, user), kept alive by its
-- node's refreshes. The first entry of a user relays its join signal; the
-- last one gone (removed, or expired because its node died) relays the
-- user's stored leave signal. Every call first removes expired entries.
-- KEYS[1] entries zset (node \31 user -> expiry, ms of Redis TIME)
-- KEYS[2] live entries per user (hash), KEYS[3] leave signal per user (hash)
-- ARGV[1] mode: up, down or list; ARGV[2] room channel; ARGV[3] TTL (ms);
-- ARGV[4] node id; then for up: user, join signal, leave signal ...; for down: user ...;
-- for list: the most users to return
local z, online, who = KEYS[1], KEYS[2], KEYS[3]
local channel = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The signals this call relays, returned to the caller by up and down.
local relayed = {}

local function gone(user)
  if redis.call('HINCRBY', online, user, -1) <= 0 then
    redis.call('HDEL', online, user)
    local leave = redis.call('HGET', who, user)
    redis.call('HDEL', who, user)
    if leave then
      redis.call(PUBLISH, channel, '0:0:' .. leave)
      relayed[#relayed + 1] = leave
    end
  end
end

for _, member in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do
  redis.call('ZREM', z, member)
  gone(string.match(member, '^[^\31]*\31(.*)$'))
end

local mode = ARGV[1]
if mode == 'up' then
  local ttl = tonumber(ARGV[3])
  for i = 5, #ARGV, 3 do
    local user = ARGV[i]
    if redis.call('ZADD', z, now + ttl, ARGV[4] .. '\31' .. user) == 1 then
      redis.call('HSET', who, user, ARGV[i + 2])
      if redis.call('HINCRBY', online, user, 1) == 1 then
        redis.call(PUBLISH, channel, '0:0:' .. ARGV[i + 1])
        relayed[#relayed + 1] = ARGV[i + 1]
      end
    end
  end
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, 2 * ttl)
  end
elseif mode == 'down' then
  for i = 5, #ARGV do
    if redis.call('ZREM', z, ARGV[4] .. '\31' .. ARGV[i]) == 1 then
      gone(ARGV[i])
    end
  end
elseif mode == 'list' then
  -- The user count, then at most ARGV[5] users' leave signals.
  local max = tonumber(ARGV[5])
  local total = redis.call('HLEN', who)
  if total <= max then
    local all = redis.call('HVALS', who)
    table.insert(all, 1, tostring(total))
    return all
  end
  local out, cursor = {tostring(total)}, '0'
  repeat
    local page = redis.call('HSCAN', who, cursor, 'COUNT', 100)
    cursor = page[1]
    for i = 2, #page[2], 2 do
      if #out > max then break end
      out[#out + 1] = page[2][i]
    end
  until cursor == '0' or #out > max
  return out
end
return relayed
