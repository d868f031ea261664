--! prelude _clock _room
-- KEYS show, lineup, requests, request-order, voters(sku), seq, channel, voter addresses(sku);
-- ARGV sku, viewer id, '1' for a vote (refused when nothing is open), the client's address
-- ('' not counted), how many viewers of one address may ask or vote, record ttl s.
if ended(KEYS[1]) then return 'show_ended' end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return 'not_in_lineup' end
local open = redis.call('HEXISTS', KEYS[3], sku) == 1
if ARGV[3] == '1' and not open then return 'not_requested' end
if redis.call('SISMEMBER', KEYS[5], ARGV[2]) == 1 then return 'already_voted' end
if ARGV[4] ~= '' then
  -- Tokens minted on one address add no more votes than a crowd behind it would.
  if tonumber(redis.call('HGET', KEYS[8], ARGV[4]) or 0) >= tonumber(ARGV[5]) then
    return 'address_limit'
  end
  redis.call('HINCRBY', KEYS[8], ARGV[4], 1)
  redis.call('EXPIRE', KEYS[8], tonumber(ARGV[6]))
end
redis.call('SADD', KEYS[5], ARGV[2])
if open then
  redis.call('HINCRBY', KEYS[3], sku, 1)
else
  redis.call('HSET', KEYS[3], sku, 1)
  redis.call('HSET', KEYS[4], sku, tonumber(redis.call('GET', KEYS[6]) or 0) + 1)
end
emit(KEYS[6], KEYS[7], requests_body(KEYS[3], KEYS[4]))
return 'ok'
