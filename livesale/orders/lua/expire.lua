-- The sweeper: the twin of state.expire, plus pruning of holds finished long ago.
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash, KEYS[6] set of SKUs with holds
-- ARGV[1] sku, ARGV[2] batch, ARGV[3] how long (ms) to keep finished holds
-- Returns {available, expired hold json...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local raw = redis.call('HGET', KEYS[2], id)
  local h = raw and cjson.decode(raw)
  if h and h.state == 'held' then
    redis.call('HINCRBY', KEYS[1], 'available', h.qty)
    redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
    redis.call('HINCRBY', KEYS[5], h.show .. '|' .. h.viewer, -h.qty)
    h.state = 'expired'
    local encoded = cjson.encode(h)
    redis.call('HSET', KEYS[2], h.id, encoded)
    redis.call('ZADD', KEYS[4], now, h.id)
    out[#out + 1] = encoded
  end
  redis.call('ZREM', KEYS[3], id)
end
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[3]),
  'LIMIT', 0, 100)
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[4], id)
end
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[6], ARGV[1])
end
out[1] = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
return out
