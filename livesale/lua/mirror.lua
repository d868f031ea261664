-- The show's mirror in its slot, from the store of record: its state and its line-up, at once.
-- KEYS[1] the show's hash, KEYS[2] its line-up hash
-- ARGV[1] state, ARGV[2] replay (1 while an ended show's replay sells), then pairs of
-- sku, price|currency|limit
-- Returns the SKUs the line-up had before.
local before = redis.call('HKEYS', KEYS[2])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'replay', ARGV[2])
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return before
