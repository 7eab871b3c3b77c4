-- Reads a page of a room's history and its position, with the overlays of the
-- page's changed messages and, for a reader, their marker and unread count.
-- KEYS[1] room state hash, KEYS[2] history stream, KEYS[3] overlays hash,
-- KEYS[4] change index zset, KEYS[5] read markers hash
-- ARGV[1] mode (latest, after, before, before_id), ARGV[2] seq or message id,
-- ARGV[3] count, ARGV[4] state TTL (ms), ARGV[5] most entries scanned backwards,
-- ARGV[6] reader's user id ('' for none)
-- Backwards, changes are skipped (their effect is in the overlays); forwards
-- (after) every entry comes, in order. A change entry's fields are m t i k u.
local state, log, overlays, index, reads = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local epoch = room_epoch(state, ARGV[4])
local seq = redis.call('HGET', state, 'seq') or '0'
local mode, count, scan_max = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])

local function is_change(entry)
  return entry[2][7] == 'k'
end

-- Up to count messages older than `cursor` (an XREVRANGE end), newest first;
-- after the first chunk, chunks of at least 64 so a run of changes costs few calls.
local function backwards(cursor)
  local out, scanned, chunk_size = {}, 0, count
  while #out < count and scanned < scan_max do
    local chunk = redis.call('XREVRANGE', log, cursor, '-', 'COUNT', chunk_size)
    if #chunk == 0 then break end
    for _, entry in ipairs(chunk) do
      if not is_change(entry) then
        out[#out + 1] = entry
        if #out == count then break end
      end
    end
    if #chunk < chunk_size then break end
    scanned = scanned + #chunk
    cursor = '(' .. chunk[#chunk][1]
    chunk_size = math.max(count, 64)
  end
  return out
end

local entries
if mode == 'latest' then
  entries = backwards('+')
elseif mode == 'after' then
  entries = redis.call('XRANGE', log, '(' .. ARGV[2] .. '-0', '+', 'COUNT', count)
elseif mode == 'before' then
  entries = backwards('(' .. ARGV[2] .. '-0')
else
  local cursor, found, scanned = '+', nil, 0
  while not found and scanned < scan_max do
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
  entries = backwards('(' .. found)
end

-- The overlay of each changed message of the page ('' for the others).
local changed = {}
if redis.call('EXISTS', overlays) == 1 then
  for i, entry in ipairs(entries) do
    changed[i] = ''
    if not is_change(entry) then
      changed[i] = redis.call('HGET', overlays, string.match(entry[1], '^(%d+)')) or ''
    end
  end
end

local marker, unread = '', 0
if ARGV[6] ~= '' then
  marker = redis.call('HGET', reads, ARGV[6]) or ''
  local e, s = string.match(marker, '^(%d+):(%d+)$')
  local head, read = tonumber(seq), 0
  if e == epoch then read = math.min(tonumber(s), head) end
  unread = head - read - redis.call('ZCOUNT', index, '(' .. read, '+inf')
  if unread < 0 then unread = 0 end
end
return {epoch, seq, entries, changed, marker, unread}
