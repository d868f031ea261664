--! prelude _clock _room
-- KEYS mutes, channel; ARGV viewer id, seconds (0 lifts), muted body. Returns muted-until ms.
local until_ms = 0
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  until_ms = now_ms() + tonumber(ARGV[2]) * 1000
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', until_ms))
end
redis.call('PUBLISH', KEYS[2], stamp(ARGV[3], 'until', until_ms))
return until_ms
