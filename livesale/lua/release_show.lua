--! prelude _clock _shelf
-- A show's grace period is over: the twin of state.release_show.
-- KEYS[1..5] the shelf
-- ARGV[1] show id
-- Returns {available, released hold json...}
local now = now_ms()
local out = {0}
for _, id in ipairs(redis.call('ZRANGE', EXPIRY, 0, -1)) do
  local raw = redis.call('HGET', HOLDS, id)
  local h = raw and cjson.decode(raw)
  if h and h.show == ARGV[1] and h.state == 'held' then
    out[#out + 1] = end_hold(h, 'released', now)
  end
end
out[1] = available()
return out
