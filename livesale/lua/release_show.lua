--! prelude _clock _shelf
-- A show's grace period is over: the twin of state.release_show. Its held holds are released
-- and its buyers' counts forgotten (the show takes no more holds to limit).
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
local prefix = ARGV[1] .. '|'
for _, field in ipairs(redis.call('HKEYS', BUYERS)) do
  if string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', BUYERS, field) end
end
out[1] = available()
return out
