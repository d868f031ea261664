-- The sweepers let a SKU with no hold left go from their index, unless a buy click wrote it
-- there again since they read it (its score then differs).
-- KEYS[1] the index (sorted set SKU -> score)
-- ARGV[1] sku, ARGV[2] the score read
-- Returns 1 when the SKU left the index.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
