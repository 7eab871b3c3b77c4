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

-- How the log is bounded once entry `seq` is in: `lengths` is the max length,
-- or 'max_len:unarchived_max' when rooms are archived. Returns the XADD trim
-- option and its threshold, and (archived rooms only) the lowest seq that
-- must stay: entries the archive does not hold yet (`archived`, from the
-- state hash) are kept, up to unarchived_max of them.
local function log_bounds(seq, lengths, archived)
  local max_len, most = string.match(lengths, '^(%d+):?(%d*)$')
  if most == '' then
    return 'MAXLEN', max_len, nil
  end
  local keep = math.max((tonumber(archived) or 0) + 1, seq - tonumber(most) + 1)
  local floor = math.min(seq - tonumber(max_len) + 1, keep)
  return 'MINID', string.format('%d', math.max(floor, 0)), keep
end
