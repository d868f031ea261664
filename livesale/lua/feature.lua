--! prelude _clock _room
-- KEYS show, lineup, requests, request-order, voters(sku), seq, channel, voter addresses(sku);
-- ARGV sku ('' unfeatures), featured body.
if ended(KEYS[1]) then return 'show_ended' end
local sku = ARGV[1]
if sku ~= '' and redis.call('HEXISTS', KEYS[2], sku) == 0 then return 'not_in_lineup' end
if sku == '' then
  redis.call('HDEL', KEYS[1], 'featured')
else
  redis.call('HSET', KEYS[1], 'featured', sku)
end
emit(KEYS[6], KEYS[7], stamp(ARGV[2], 'at', now_ms()))
if sku ~= '' and redis.call('HDEL', KEYS[3], sku) == 1 then
  redis.call('HDEL', KEYS[4], sku)
  redis.call('DEL', KEYS[5], KEYS[8])
  emit(KEYS[6], KEYS[7], requests_body(KEYS[3], KEYS[4]))
end
return 'ok'
