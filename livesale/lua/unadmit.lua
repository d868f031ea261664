-- Give back what a buy click's first step (admit.lua) took when its second step (reserve.lua)
-- refused it: the idempotency record, if it is still the click's, and the hold's place among
-- the live holds of its viewer and address.
-- KEYS[1] the click's idempotency record, KEYS[2] the viewer's live holds in the show,
-- KEYS[3] the address's
-- ARGV[1] hold id, ARGV[2] the record the click wrote
-- Returns the number of entries removed.
local n = redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[2] then
  n = n + redis.call('DEL', KEYS[1])
end
return n
