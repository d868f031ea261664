-- Give a held hold back: the twin of state.release.
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash, KEYS[6] show channel
-- ARGV[1] hold id, ARGV[2] viewer id ('' when the system releases it)
-- Returns {status, available, hold json}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function available()
  return tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  return {'gone', available(), ''}
end
local h = cjson.decode(raw)
if ARGV[2] ~= '' and h.viewer ~= ARGV[2] then
  return {'forbidden', available(), ''}
end
if h.state ~= 'held' then
  return {'not_held', available(), raw}
end
redis.call('HINCRBY', KEYS[1], 'available', h.qty)
redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
redis.call('HINCRBY', KEYS[5], h.show .. '|' .. h.viewer, -h.qty)
h.state = 'released'
raw = cjson.encode(h)
redis.call('HSET', KEYS[2], h.id, raw)
redis.call('ZREM', KEYS[3], h.id)
redis.call('ZADD', KEYS[4], now, h.id)
redis.call('PUBLISH', KEYS[6], cjson.encode({type = 'stock', sku = h.sku,
  available = available()}))
return {'ok', available(), raw}
