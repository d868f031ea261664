--! prelude _clock
-- A rate limit: a token bucket that refills `rate` tokens a second up to `burst`.
-- KEYS[1] the bucket (hash tokens, at)
-- ARGV[1] burst, ARGV[2] refill per second, ARGV[3] tokens this request takes
-- Returns {1, 0} when allowed, {0, ms until it would be} when refused.
local burst, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1] or burst)
local at = tonumber(b[2] or now)
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
if tokens < cost then
  return {0, math.ceil((cost - tokens) * 1000 / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost), 'at', now)
-- Gone once it would be full again: an idle client costs Redis nothing.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {1, 0}
