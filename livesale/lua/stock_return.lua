-- Units of a cancelled or refunded order go back on sale: the twin of state.return_units.
-- Sold -> available, out of the buyer's count, once per unit however often it is retried.
-- KEYS[1] stock hash, KEYS[2] buyers hash, KEYS[3] returned hash, KEYS[4] the SKU's channel
-- ARGV[1] order id, ARGV[2] units the order has given back in all (SQLite),
-- ARGV[3] of which SQLite knows are back already, ARGV[4] <show>|<viewer>, ARGV[5] sku,
-- ARGV[6] show id
-- Returns {status, available, units moved now}; status "unready" while stock is rebuilt.
-- (SQLite's stock ledger records the return.)
if redis.call('HEXISTS', KEYS[1], 'ready') == 0 then
  return {'unready', 0, 0}
end
local total = tonumber(ARGV[2])
local before = math.max(tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0'), tonumber(ARGV[3]))
local units = total - before
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
if units <= 0 then
  return {'ok', available, 0}
end
redis.call('HINCRBY', KEYS[1], 'sold', -units)
available = redis.call('HINCRBY', KEYS[1], 'available', units)
-- A buyer whose count is back to nothing leaves the hash (the twin of state._less).
if redis.call('HINCRBY', KEYS[2], ARGV[4], -units) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[3], ARGV[1], total)
redis.call('PUBLISH', KEYS[4], cjson.encode({type = 'stock', show = ARGV[6], sku = ARGV[5],
  available = available}))
return {'ok', available, units}
