-- Prelude: a rate limit, a token bucket (hash tokens, at) that refills `rate` tokens a second
-- up to `burst`. take_tokens() returns 0 when the request may go (its `cost` is taken), else
-- the ms until it could.
local function take_tokens(key, burst, rate, cost, now)
  local b = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(b[1] or burst)
  local at = tonumber(b[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if tokens < cost then
    return math.ceil((cost - tokens) * 1000 / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens - cost), 'at', now)
  -- Gone once it would be full again: an idle client costs Redis nothing.
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return 0
end
