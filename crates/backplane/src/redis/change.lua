-- Applies a change (edit, delete, reaction) to a stored message's overlay and
-- stores and relays the change as the room's next entry, atomically.
-- KEYS[1] room state hash, KEYS[2] history stream, KEYS[3] overlays hash
-- (message seq -> JSON: t text, e edited at, d deleted at, r [[emoji, [user ...]] ...]),
-- KEYS[4] change index zset (change seq -> "<change seq>:<message seq>")
-- ARGV[1] channel, ARGV[2] envelope, ARGV[3] accepted at (ms), ARGV[4] change id,
-- ARGV[5] max length ('max_len:unarchived_max' when archived), ARGV[6] max age (ms), ARGV[7] state TTL (ms),
-- ARGV[8] message seq, ARGV[9] message id or '', ARGV[10] user, ARGV[11] '1' if
-- the user moderates, ARGV[12] op (edit, delete, add, remove), ARGV[13] text or
-- emoji, ARGV[14] most emoji per message, ARGV[15] most users per emoji
local state, log, overlays, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epoch = room_epoch(state, ARGV[7])
local target, user, op, arg = ARGV[8], ARGV[10], ARGV[12], ARGV[13]
local found = redis.call('XRANGE', log, target .. '-0', target .. '-0')[1]
if not found then return {'unknown', epoch} end
local fields = {}
for i = 1, #found[2], 2 do fields[found[2][i]] = found[2][i + 1] end
if fields['k'] then return {'not_message', epoch} end
if ARGV[9] ~= '' and fields['i'] ~= ARGV[9] then return {'unknown', epoch} end
local stored = redis.call('HGET', overlays, target)
local overlay = stored and cjson.decode(stored) or {}
if overlay.d then return {'deleted', epoch} end
local ts = tonumber(ARGV[3])
if op == 'edit' or op == 'delete' then
  if fields['u'] ~= user and ARGV[11] ~= '1' then return {'not_yours', epoch} end
  if op == 'edit' then
    overlay.t, overlay.e = arg, ts
  else
    overlay = {d = ts}
  end
else
  local reactions = overlay.r or {}
  local slot
  for i, pair in ipairs(reactions) do
    if pair[1] == arg then slot = i break end
  end
  if op == 'add' then
    if not slot then
      if #reactions >= tonumber(ARGV[14]) then return {'too_many', epoch} end
      table.insert(reactions, {arg, {}})
      slot = #reactions
    end
    local users = reactions[slot][2]
    for _, u in ipairs(users) do
      if u == user then return {'same', epoch} end
    end
    if #users >= tonumber(ARGV[15]) then return {'too_many', epoch} end
    table.insert(users, user)
  else
    if not slot then return {'same', epoch} end
    local users, at = reactions[slot][2], nil
    for i, u in ipairs(users) do
      if u == user then at = i break end
    end
    if not at then return {'same', epoch} end
    table.remove(users, at)
    if #users == 0 then table.remove(reactions, slot) end
  end
  if #reactions == 0 then overlay.r = nil else overlay.r = reactions end
end
local seq = redis.call('HINCRBY', state, 'seq', 1)
local option, threshold = log_bounds(seq, ARGV[5], redis.call('HGET', state, 'archived'))
redis.call('XADD', log, option, '~', threshold, string.format('%d-0', seq),
  'm', ARGV[2], 't', ARGV[3], 'i', ARGV[4], 'k', 'c', 'u', user)
if next(overlay) == nil then
  redis.call('HDEL', overlays, target)
else
  redis.call('HSET', overlays, target, cjson.encode(overlay))
end
redis.call('ZADD', index, seq, string.format('%d:', seq) .. target)
redis.call('PEXPIRE', overlays, ARGV[6])
redis.call('PEXPIRE', index, ARGV[6])
local margin = expiry_margin(ARGV[6], ARGV[7])
redis.call('PEXPIRE', log, string.format('%d', tonumber(ARGV[6]) + margin))
redis.call('PEXPIRE', state, string.format('%d', tonumber(ARGV[7]) + margin))
redis.call(PUBLISH, ARGV[1], epoch .. string.format(':%d:', seq) .. ARGV[2])
return {'new', epoch, seq}
