"""The room's Lua scripts: each applies one rule of :mod:`livesale.room.state` atomically in
Redis, takes the show's next sequence number and publishes the resulting event, all in one step.

Because the state change, ``INCR`` of the show's counter and ``PUBLISH`` happen inside one
script, every subscriber (every process) sees the events of a show in sequence order, and a
snapshot read in one ``MULTI`` is exactly the state after the event it names.

Event bodies come from Python encoded with placeholders (``"seq":0``, ``"id":0``, ``"at":0``,
``"until":0``); :func:`stamp` fills them. A placeholder is found by plain search for its first
occurrence: it precedes, or cannot occur inside, any user text (JSON escapes every quote in a
string). Scripts build no keys: they get them all in ``KEYS``.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function stamp(body, field, value)
  local i, j = string.find(body, '"' .. field .. '":0', 1, true)
  return string.sub(body, 1, i - 1) .. '"' .. field .. '":' .. string.format('%d', value)
    .. string.sub(body, j + 1)
end

local function emit(seq_key, channel, body)
  local seq = redis.call('INCR', seq_key)
  redis.call('PUBLISH', channel, stamp(body, 'seq', seq))
  return seq
end

local function ended(show_key)
  return redis.call('HGET', show_key, 'state') == 'ended'
end

-- The ranked queue: most votes first, then the request opened first (state.rank).
local function requests_body(votes_key, order_key)
  local flat = redis.call('HGETALL', votes_key)
  local items = {}
  for i = 1, #flat, 2 do
    local sku = flat[i]
    local opened = tonumber(redis.call('HGET', order_key, sku) or 0)
    items[#items + 1] = {sku, tonumber(flat[i + 1]), opened}
  end
  table.sort(items, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[1] < b[1]
  end)
  local parts = {}
  for i, it in ipairs(items) do
    parts[i] = '{"sku":' .. cjson.encode(it[1]) .. ',"votes":' .. string.format('%d', it[2]) .. '}'
  end
  return '{"type":"requests","seq":0,"queue":[' .. table.concat(parts, ',') .. ']}'
end
"""

#: KEYS seq, channel; ARGV body. Publish one sequenced event; returns its number.
PUBLISH_SEQ = (
    _COMMON
    + """
return emit(KEYS[1], KEYS[2], ARGV[1])
"""
)

#: KEYS show, lineup, requests, request-order, voters(sku), seq, channel;
#: ARGV sku ('' unfeatures), featured body.
FEATURE = (
    _COMMON
    + """
if ended(KEYS[1]) then return 'show_ended' end
local sku = ARGV[1]
if sku ~= '' and redis.call('HEXISTS', KEYS[2], sku) == 0 then return 'not_in_lineup' end
if sku == '' then
  redis.call('HDEL', KEYS[1], 'featured')
else
  redis.call('HSET', KEYS[1], 'featured', sku)
end
emit(KEYS[6], KEYS[7], stamp(ARGV[2], 'at', now_ms()))
if sku ~= '' and redis.call('HDEL', KEYS[3], sku) == 1 then
  redis.call('HDEL', KEYS[4], sku)
  redis.call('DEL', KEYS[5])
  emit(KEYS[6], KEYS[7], requests_body(KEYS[3], KEYS[4]))
end
return 'ok'
"""
)

#: KEYS show, lineup, requests, request-order, voters(sku), seq, channel;
#: ARGV sku, viewer id, '1' for a vote (refused when nothing is open).
REQUEST = (
    _COMMON
    + """
if ended(KEYS[1]) then return 'show_ended' end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return 'not_in_lineup' end
local open = redis.call('HEXISTS', KEYS[3], sku) == 1
if ARGV[3] == '1' and not open then return 'not_requested' end
if redis.call('SADD', KEYS[5], ARGV[2]) == 0 then return 'already_voted' end
if open then
  redis.call('HINCRBY', KEYS[3], sku, 1)
else
  redis.call('HSET', KEYS[3], sku, 1)
  redis.call('HSET', KEYS[4], sku, tonumber(redis.call('GET', KEYS[6]) or 0) + 1)
end
emit(KEYS[6], KEYS[7], requests_body(KEYS[3], KEYS[4]))
return 'ok'
"""
)

#: KEYS requests, request-order, voters(sku), seq, channel; ARGV sku.
RESOLVE = (
    _COMMON
    + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 'not_requested' end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
emit(KEYS[4], KEYS[5], requests_body(KEYS[1], KEYS[2]))
return 'ok'
"""
)

#: KEYS show, lineup, plants, viewer's planted set, channel; ARGV sku, viewer id, '1'|'0'.
#: Publishes ``plants`` (for hosts) and ``planted`` (for the viewer); both unsequenced.
PLANT = (
    _COMMON
    + """
if ended(KEYS[1]) then return {'show_ended', 0} end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return {'not_in_lineup', 0} end
local count
if ARGV[3] == '1' then
  if redis.call('SADD', KEYS[4], sku) == 1 then
    count = redis.call('HINCRBY', KEYS[3], sku, 1)
  end
elseif redis.call('SREM', KEYS[4], sku) == 1 then
  count = redis.call('HINCRBY', KEYS[3], sku, -1)
end
local sku_json = cjson.encode(sku)
if count ~= nil then
  redis.call('PUBLISH', KEYS[5], '{"type":"plants","seq":0,"sku":' .. sku_json
    .. ',"count":' .. string.format('%d', count) .. '}')
else
  count = tonumber(redis.call('HGET', KEYS[3], sku) or 0)
end
local want = 'false'
if ARGV[3] == '1' then want = 'true' end
redis.call('PUBLISH', KEYS[5], '{"type":"planted","seq":0,"sku":' .. sku_json .. ',"want":'
  .. want .. ',"viewer_id":' .. cjson.encode(ARGV[2]) .. '}')
return {'ok', count}
"""
)

#: KEYS show, mutes, viewer's bucket, chat tail, seq, channel;
#: ARGV viewer id, '1' for the host, chat body, rate per s, burst, tail length.
#: Returns {code, n}: the line id when 'ok', else how many ms to wait.
CHAT = (
    _COMMON
    + """
if ended(KEYS[1]) then return {'show_ended', 0} end
local now = now_ms()
if ARGV[2] ~= '1' then
  local muted = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or 0)
  if muted > now then return {'muted', muted - now} end
  local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
  local b = redis.call('HMGET', KEYS[3], 'tokens', 'at', 'last')
  local tokens = tonumber(b[1] or burst)
  local at = tonumber(b[2] or now)
  local last = tonumber(b[3] or -1e12)
  local slow = tonumber(redis.call('HGET', KEYS[1], 'slow_mode') or 0)
  local wait = last + slow * 1000 - now
  if slow > 0 and wait > 0 then return {'slow_mode', wait} end
  local refilled = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if refilled < 1 then return {'rate_limited', math.floor((1 - refilled) * 1000 / rate)} end
  redis.call('HSET', KEYS[3], 'tokens', tostring(refilled - 1), 'at', now, 'last', now)
  redis.call('PEXPIRE', KEYS[3], slow * 1000 + 10000)
end
local seq = redis.call('INCR', KEYS[5])
local line = stamp(stamp(stamp(ARGV[3], 'seq', seq), 'id', seq), 'at', now)
redis.call('RPUSH', KEYS[4], line)
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[6]), -1)
redis.call('PUBLISH', KEYS[6], line)
return {'ok', seq}
"""
)

#: KEYS chat tail, seq, channel; ARGV line id, chat_deleted body.
DELETE_CHAT = (
    _COMMON
    + """
local id = tonumber(ARGV[1])
if id < 1 or id > tonumber(redis.call('GET', KEYS[2]) or 0) then return 'not_found' end
for _, line in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if cjson.decode(line)['id'] == id then redis.call('LREM', KEYS[1], 1, line) end
end
emit(KEYS[2], KEYS[3], ARGV[2])
return 'ok'
"""
)

#: KEYS mutes, channel; ARGV viewer id, seconds (0 lifts), muted body. Returns muted-until ms.
MUTE = (
    _COMMON
    + """
local until_ms = 0
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  until_ms = now_ms() + tonumber(ARGV[2]) * 1000
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', until_ms))
end
redis.call('PUBLISH', KEYS[2], stamp(ARGV[3], 'until', until_ms))
return until_ms
"""
)

#: KEYS show, seq, channel; ARGV seconds, slow_mode body.
SLOW_MODE = (
    _COMMON
    + """
redis.call('HSET', KEYS[1], 'slow_mode', ARGV[1])
emit(KEYS[2], KEYS[3], ARGV[2])
return 'ok'
"""
)

#: KEYS presence; ARGV process id, its viewer count (-1: only read), ttl ms.
#: Returns the viewers of every process still alive; forgets processes that stopped reporting.
PRESENCE = (
    _COMMON
    + """
local now = now_ms()
local count = tonumber(ARGV[2])
if count > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], count .. ':' .. string.format('%d', now + tonumber(ARGV[3])))
elseif count == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local flat = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #flat, 2 do
  local sep = string.find(flat[i + 1], ':', 1, true)
  if tonumber(string.sub(flat[i + 1], sep + 1)) < now then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    total = total + tonumber(string.sub(flat[i + 1], 1, sep - 1))
  end
end
return total
"""
)
