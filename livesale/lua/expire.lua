--! prelude _clock _shelf
-- The sweeper: the twin of state.expire, plus forgetting holds finished long ago.
-- KEYS[1..5] the shelf, KEYS[6] set of SKUs with holds
-- ARGV[1] sku, ARGV[2] batch, ARGV[3] how long (ms) to keep finished holds
-- Returns {available, expired hold json...}
local now = now_ms()
local out = {0}
for _, encoded in ipairs(expire_due(now, tonumber(ARGV[2]))) do
  out[#out + 1] = encoded
end
local old = redis.call('ZRANGEBYSCORE', DONE, '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0,
  tonumber(ARGV[2]))
for _, id in ipairs(old) do
  redis.call('HDEL', HOLDS, id)
  redis.call('ZREM', DONE, id)
end
-- The SKU stays in the sweepers' round while it has finished holds left to forget.
if redis.call('ZCARD', EXPIRY) == 0 and redis.call('ZCARD', DONE) == 0 then
  redis.call('SREM', KEYS[6], ARGV[1])
end
out[1] = available()
return out
