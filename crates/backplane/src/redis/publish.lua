-- Stores a batch of messages, each as its room's next entry, and relays each
-- one; the rooms' expiries are pushed back once per room per batch.
-- KEYS: per room, in order: state hash (epoch, seq), history stream, overlays
-- hash, change index zset; then the dedup keys of the messages that have one.
-- ARGV[1] max length ('max_len:unarchived_max' when archived), ARGV[2] max age (ms), ARGV[3] state TTL (ms),
-- ARGV[4] dedup window (ms), ARGV[5] number of rooms R, ARGV[6 .. 5+R] the
-- rooms' channels; then 7 per message: room number (1..R), dedup key's index
-- in KEYS (0: none), envelope, accepted at (ms), message id, reply stored for
-- retries, sender.
-- Returns 3 per message: 'new', epoch, seq | 'dup', epoch, '<seq>:<reply>' |
-- 'err', message, ''. A message that fails is not stored and does not stop
-- the others.
local max_len, max_age, state_ttl, window = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rooms = tonumber(ARGV[5])
local epochs, seqs, refreshed, stored, runs, out = {}, {}, {}, {}, {}, {}
local archived = {}

-- Trims the oldest entries of `log` older than `cutoff` (ms), but none from
-- seq `keep` on (entries not yet archived), when given.
local function trim_by_age(log, cutoff, base, keep)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  if first and tonumber(first[2][4]) < cutoff then
    local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
    local minid = nil
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= cutoff then
        minid = entry[1]
        break
      end
    end
    if not minid then
      minid = string.format('%d-0', tonumber(string.match(batch[#batch][1], '^(%d+)')) + 1)
    end
    if keep and tonumber(string.match(minid, '^(%d+)')) > keep then
      minid = string.format('%d-0', keep)
    end
    redis.call('XTRIM', log, 'MINID', minid)
  end
  forget_trimmed(log, KEYS[base + 3], KEYS[base + 4])
end

-- Room `room`'s epoch, last seq and last refresh of its expiries, read once
-- per batch.
local function position(room, state)
  local found = redis.call('HMGET', state, 'epoch', 'seq', 'ttl_at', 'archived')
  local epoch = found[1] or room_epoch(state, state_ttl)
  epochs[room], seqs[room] = epoch, tonumber(found[2]) or 0
  refreshed[room] = tonumber(found[3]) or 0
  archived[room] = found[1] and found[4] or 0
end

-- Stores message `m` (its first argument's index) and queues its relay:
-- its reply.
local function store(m)
  local room = tonumber(ARGV[m])
  local base = (room - 1) * 4
  local state, log = KEYS[base + 1], KEYS[base + 2]
  local dedup_index = tonumber(ARGV[m + 1])
  local dedup = dedup_index > 0 and KEYS[dedup_index] or nil
  if not epochs[room] then
    position(room, state)
  end
  local epoch = epochs[room]
  if dedup then
    local prior = redis.call('GET', dedup)
    if prior then
      return {'dup', epoch, prior}
    end
  end
  local envelope, at = ARGV[m + 2], ARGV[m + 3]
  local seq = seqs[room] + 1
  local id = string.format('%d', seq)
  local option, threshold, keep = log_bounds(seq, max_len, archived[room])
  redis.call('XADD', log, option, '~', threshold, id,
    'm', envelope, 't', at, 'i', ARGV[m + 4], 'u', ARGV[m + 6])
  seqs[room] = seq
  -- Trim by age now and then: the oldest entries older than the cutoff go.
  if seq % 32 == 0 then
    trim_by_age(log, tonumber(at) - tonumber(max_age), base, keep)
  end
  stored[room] = true
  if dedup then
    redis.call('SET', dedup, id .. ':' .. ARGV[m + 5], 'PX', window)
  end
  local run = runs[room]
  if not run then
    run = {first = id}
    runs[room] = run
  end
  run[#run + 1] = envelope
  return {'new', epoch, seq}
end

for m = 6 + rooms, #ARGV, 7 do
  local ok, reply = pcall(store, m)
  if not ok then
    -- A Redis error is a table with its text in `err`.
    reply = {'err', type(reply) == 'table' and reply.err or tostring(reply), ''}
  end
  out[#out + 1], out[#out + 2], out[#out + 3] = reply[1], reply[2], reply[3]
end
-- Each room's stored messages (consecutive seqs) are relayed in one PUBLISH:
-- `<epoch>:<seq>:<envelope>` for one, `<epoch>:<first seq>+<count>:` and then
-- `<length>:<envelope>` for each of several. A relay that failed is repaired
-- by the nodes from the history, like any lost relay.
local function relay(room, run)
  local head = epochs[room] .. ':' .. run.first
  if #run == 1 then
    redis.call(PUBLISH, ARGV[5 + room], head .. ':' .. run[1])
    return
  end
  local parts = {head, '+', #run, ':'}
  for _, envelope in ipairs(run) do
    parts[#parts + 1] = #envelope .. ':'
    parts[#parts + 1] = envelope
  end
  redis.call(PUBLISH, ARGV[5 + room], table.concat(parts))
end
for room = 1, rooms do
  if runs[room] then
    pcall(relay, room, runs[room])
  end
end

-- The expiries are pushed back only when the last push is older than the
-- margin, and then by the margin more (see `expiry_margin`), so a room's
-- history always lives at least max age past its last message.
local margin, now = expiry_margin(max_age, state_ttl), nil
for room = 1, rooms do
  if stored[room] then
    local base = (room - 1) * 4
    local seq = string.format('%d', seqs[room])
    now = now or redis_millis()
    if now - refreshed[room] < margin then
      redis.call('HSET', KEYS[base + 1], 'seq', seq)
    else
      redis.call('HSET', KEYS[base + 1], 'seq', seq, 'ttl_at', string.format('%d', now))
      redis.call('PEXPIRE', KEYS[base + 2], string.format('%d', tonumber(max_age) + margin))
      redis.call('PEXPIRE', KEYS[base + 1], string.format('%d', tonumber(state_ttl) + margin))
    end
  end
end
return out
