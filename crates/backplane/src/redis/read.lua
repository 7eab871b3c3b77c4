-- Reads a page of a room's history and its position.
-- KEYS[1] room state hash, KEYS[2] history stream
-- ARGV[1] mode (latest, after, before, before_id), ARGV[2] seq or message id,
-- ARGV[3] count, ARGV[4] state TTL (ms), ARGV[5] most entries scanned for before_id
local state, log = KEYS[1], KEYS[2]
local epoch = room_epoch(state, ARGV[4])
local seq = redis.call('HGET', state, 'seq') or '0'
local mode, count = ARGV[1], ARGV[3]
local entries
if mode == 'latest' then
  entries = redis.call('XREVRANGE', log, '+', '-', 'COUNT', count)
elseif mode == 'after' then
  entries = redis.call('XRANGE', log, '(' .. ARGV[2] .. '-0', '+', 'COUNT', count)
elseif mode == 'before' then
  entries = redis.call('XREVRANGE', log, '(' .. ARGV[2] .. '-0', '-', 'COUNT', count)
else
  local cursor, found, scanned = '+', nil, 0
  while not found and scanned < tonumber(ARGV[5]) do
    local chunk = redis.call('XREVRANGE', log, cursor, '-', 'COUNT', 100)
    if #chunk == 0 then break end
    for _, entry in ipairs(chunk) do
      if entry[2][6] == ARGV[2] then
        found = entry[1]
        break
      end
    end
    scanned = scanned + #chunk
    cursor = '(' .. chunk[#chunk][1]
  end
  if not found then
    return {epoch, seq, 'unknown'}
  end
  entries = redis.call('XREVRANGE', log, '(' .. found, '-', 'COUNT', count)
end
return {epoch, seq, entries}
