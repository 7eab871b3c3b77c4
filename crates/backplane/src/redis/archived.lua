-- Records that the archive holds a room's entries up to a seq of an epoch:
-- trimming may then drop them (see keep_unarchived). A mark for an epoch the
-- room has left, or behind the one recorded, changes nothing.
-- KEYS[1] room state hash; ARGV[1] epoch, ARGV[2] seq.
local found = redis.call('HMGET', KEYS[1], 'epoch', 'archived')
if found[1] == ARGV[1] and (tonumber(found[2]) or 0) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'archived', ARGV[2])
  return 1
end
return 0
