--! prelude _clock _shelf
-- The sweeper: the twin of state.expire, plus forgetting holds finished long ago.
-- KEYS[1..5] the shelf
-- ARGV[1] batch, ARGV[2] how long (ms) to keep finished holds
-- Returns {available, idle, expired hold json...}: idle 1 when the SKU has no hold left, live
-- or finished (the sweepers' index may let it go: livesale.orders.holds).
local now = now_ms()
local out = {0, 0}
for _, encoded in ipairs(expire_due(now, tonumber(ARGV[1]))) do
  out[#out + 1] = encoded
end
local old = redis.call('ZRANGEBYSCORE', DONE, '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0,
  tonumber(ARGV[1]))
for _, id in ipairs(old) do
  redis.call('HDEL', HOLDS, id)
  redis.call('ZREM', DONE, id)
end
-- The SKU stays in the sweepers' round while it has finished holds left to forget.
if redis.call('ZCARD', EXPIRY) == 0 and redis.call('ZCARD', DONE) == 0 then
  out[2] = 1
end
out[1] = available()
return out
