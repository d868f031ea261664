--! prelude _clock _room
-- KEYS requests, request-order, voters(sku), seq, channel, voter addresses(sku); ARGV sku.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 'not_requested' end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[6])
emit(KEYS[4], KEYS[5], requests_body(KEYS[1], KEYS[2]))
return 'ok'
