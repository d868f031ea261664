--! prelude _clock _room
-- KEYS show, lineup, requests, request-order, voters(sku), seq, channel;
-- ARGV sku, viewer id, '1' for a vote (refused when nothing is open).
if ended(KEYS[1]) then return 'show_ended' end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return 'not_in_lineup' end
local open = redis.call('HEXISTS', KEYS[3], sku) == 1
if ARGV[3] == '1' and not open then return 'not_requested' end
if redis.call('SADD', KEYS[5], ARGV[2]) == 0 then return 'already_voted' end
if open then
  redis.call('HINCRBY', KEYS[3], sku, 1)
else
  redis.call('HSET', KEYS[3], sku, 1)
  redis.call('HSET', KEYS[4], sku, tonumber(redis.call('GET', KEYS[6]) or 0) + 1)
end
emit(KEYS[6], KEYS[7], requests_body(KEYS[3], KEYS[4]))
return 'ok'
