-- A show's grace period is over: the twin of state.release_show.
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash
-- ARGV[1] show id
-- Returns {available, released hold json...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local raw = redis.call('HGET', KEYS[2], id)
  local h = raw and cjson.decode(raw)
  if h and h.show == ARGV[1] and h.state == 'held' then
    redis.call('HINCRBY', KEYS[1], 'available', h.qty)
    redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
    redis.call('HINCRBY', KEYS[5], h.show .. '|' .. h.viewer, -h.qty)
    h.state = 'released'
    local encoded = cjson.encode(h)
    redis.call('HSET', KEYS[2], h.id, encoded)
    redis.call('ZREM', KEYS[3], h.id)
    redis.call('ZADD', KEYS[4], now, h.id)
    out[#out + 1] = encoded
  end
end
out[1] = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
return out
