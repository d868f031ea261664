--! prelude _clock _room
-- The host bans (or, ARGV[2] '0', lets back) a viewer, and the address it joined from.
-- KEYS bans, clients, channel; ARGV viewer id, '1' ban | '0' lift, record ttl s.
-- A ban publishes ``kick`` (read by every process's hub, never relayed): the viewer's sockets,
-- and every socket of its address, close with 4410. Returns the address bound ('' if none).
local addr = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], '1')
  if addr ~= '' then redis.call('HSET', KEYS[1], '@' .. addr, ARGV[1]) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  redis.call('PUBLISH', KEYS[3], cjson.encode({type = 'kick', viewer_id = ARGV[1],
    client = addr, code = 4410, reason = 'the host removed you from this show'}))
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  -- Only the ban this viewer brought on its address is lifted with it.
  if addr ~= '' and redis.call('HGET', KEYS[1], '@' .. addr) == ARGV[1] then
    redis.call('HDEL', KEYS[1], '@' .. addr)
  end
end
return addr
