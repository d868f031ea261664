--! prelude _clock _shelf
-- Checkout succeeded: the twin of state.confirm. Held -> sold, once, only while the hold lives.
-- KEYS[1..5] the shelf, KEYS[6] the SKU's channel (the hold then leaves its viewer's and
-- address's live holds in the show's slot: unadmit.lua)
-- ARGV[1] hold id, ARGV[2] order id
-- Returns {status, available, hold json}
if not ready() then
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
  redis.call('PUBLISH', KEYS[6], cjson.encode({type = 'stock', show = h.show, sku = h.sku,
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
redis.call('PUBLISH', KEYS[6], cjson.encode({type = 'sale', show = h.show, sku = h.sku,
  qty = h.qty}))
return {'ok', available(), raw}
