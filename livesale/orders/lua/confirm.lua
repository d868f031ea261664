-- Checkout succeeded: the twin of state.confirm. Held -> sold, once, only while the hold lives.
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash, KEYS[6] stock-ready marker, KEYS[7] show channel
-- ARGV[1] hold id, ARGV[2] order id
-- Returns {status, available, hold json}
if redis.call('EXISTS', KEYS[6]) == 0 then
  return {'unready', 0, ''}
end
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
if h.state == 'confirmed' then
  if h.order == ARGV[2] then
    return {'ok', available(), raw}
  end
  return {'taken', available(), raw}
end
if h.state ~= 'held' then
  return {'expired', available(), raw}
end
if h.exp <= now then
  redis.call('HINCRBY', KEYS[1], 'available', h.qty)
  redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
  redis.call('HINCRBY', KEYS[5], h.show .. '|' .. h.viewer, -h.qty)
  h.state = 'expired'
  raw = cjson.encode(h)
  redis.call('HSET', KEYS[2], h.id, raw)
  redis.call('ZREM', KEYS[3], h.id)
  redis.call('ZADD', KEYS[4], now, h.id)
  redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'stock', sku = h.sku,
    available = available()}))
  return {'expired', available(), raw}
end
redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
redis.call('HINCRBY', KEYS[1], 'sold', h.qty)
h.state = 'confirmed'
h.order = ARGV[2]
raw = cjson.encode(h)
redis.call('HSET', KEYS[2], h.id, raw)
redis.call('ZREM', KEYS[3], h.id)
redis.call('ZADD', KEYS[4], now, h.id)
redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'sale', sku = h.sku, qty = h.qty}))
return {'ok', available(), raw}
