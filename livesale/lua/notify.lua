--! prelude _clock _room
-- A viewer asks to be told (or no longer) when a sold-out item is back.
-- KEYS show, lineup, the viewer's notify set; ARGV sku, '1' on | '0' off, record ttl s.
if ended(KEYS[1]) then return 'show_ended' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 'not_in_lineup' end
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
else
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 'ok'
