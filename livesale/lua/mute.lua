--! prelude _clock _room
-- KEYS mutes, channel, clients; ARGV viewer id, seconds (0 lifts), muted body, record ttl s.
-- The mute binds the address the viewer joined from too, so a new token does not lift it.
-- Returns muted-until ms.
local until_ms = 0
local addr = redis.call('HGET', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if addr then redis.call('HDEL', KEYS[1], '@' .. addr) end
else
  until_ms = now_ms() + tonumber(ARGV[2]) * 1000
  local text = string.format('%d', until_ms)
  redis.call('HSET', KEYS[1], ARGV[1], text)
  if addr then redis.call('HSET', KEYS[1], '@' .. addr, text) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
redis.call('PUBLISH', KEYS[2], stamp(ARGV[3], 'until', until_ms))
return until_ms
