--! prelude _clock _shelf
-- Checkout succeeded: the twin of state.confirm. Held -> sold, once, only while the hold lives.
-- KEYS[1..5] the shelf, KEYS[6] stock-ready marker, KEYS[7] show channel, KEYS[8..9] the
-- viewer's and the address's live holds in the show (a bought hold leaves them)
-- ARGV[1] hold id, ARGV[2] order id
-- Returns {status, available, hold json}
if redis.call('EXISTS', KEYS[6]) == 0 then
  return {'unready', 0, ''}
end
local now = now_ms()
local raw = redis.call('HGET', HOLDS, ARGV[1])
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
  raw = end_hold(h, 'expired', now)
  redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'stock', sku = h.sku,
    available = available()}))
  return {'expired', available(), raw}
end
redis.call('HINCRBY', STOCK, 'held', -h.qty)
redis.call('HINCRBY', STOCK, 'sold', h.qty)
h.state = 'confirmed'
h.order = ARGV[2]
raw = cjson.encode(h)
redis.call('HSET', HOLDS, h.id, raw)
redis.call('ZREM', EXPIRY, h.id)
redis.call('ZADD', DONE, now, h.id)
redis.call('ZREM', KEYS[8], h.id)
redis.call('ZREM', KEYS[9], h.id)
redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'sale', sku = h.sku, qty = h.qty}))
return {'ok', available(), raw}
