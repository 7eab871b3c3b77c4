-- The position (epoch, seq) of each room.
-- KEYS room state hashes; ARGV[1] state TTL (ms)
local out = {}
for _, state in ipairs(KEYS) do
  out[#out + 1] = room_epoch(state, ARGV[1])
  out[#out + 1] = redis.call('HGET', state, 'seq') or '0'
end
return out
