--! prelude _clock _rate
-- A rate limit (see _rate.lua).
-- KEYS[1] the bucket (hash tokens, at)
-- ARGV[1] burst, ARGV[2] refill per second, ARGV[3] tokens this request takes
-- Returns {1, 0} when allowed, {0, ms until it would be} when refused.
local wait = take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  now_ms())
if wait > 0 then
  return {0, wait}
end
return {1, 0}
