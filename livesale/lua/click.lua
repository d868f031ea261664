--! prelude _clock _rate _shelf _admit _reserve
-- A whole buy click in one call, on a single Redis only (its keys are of the show's slot and of
-- the SKU's, which a Redis Cluster cannot run together): admit.lua's checks, then reserve.lua's
-- step, then admit.lua's claim for a hold made, so a refused click claims nothing (where
-- the two scripts of a cluster claim and give back). The steps and their answers are the two
-- scripts' own; atomic as a whole, so no other click ever sees it between its steps.
-- KEYS[1..7] reserve.lua's keys (the shelf first), KEYS[8..14] admit.lua's, KEYS[15] the
-- sweepers' index of SKUs with holds
-- ARGV[1..11] admit.lua's arguments, ARGV[12] show id, ARGV[13] idempotency key, ARGV[14] reap
-- batch, ARGV[15] the per-buyer limit of an item whose line-up sets none (0: none), ARGV[16]
-- how long past a new hold's expiry the index keeps its SKU (ms)
-- Returns {'admit', admit.lua's answer...} for a click the first step did not let through,
-- else {'reserve', reserve.lua's answer...}.
local shown = {KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]}
local refused, exp = admit_check(shown, ARGV)
if refused then
  return {'admit', unpack(refused)}
end
local reserved = take_stock(KEYS, {ARGV[1], ARGV[12], ARGV[2], ARGV[3], ARGV[4], exp, ARGV[13],
  ARGV[14], ARGV[15], ARGV[7], ARGV[8]})
if reserved[1] == 'ok' then
  admit_claim(shown, ARGV, exp)
  redis.call('ZADD', KEYS[15], 'GT', exp + tonumber(ARGV[16]), ARGV[3])
end
return {'reserve', unpack(reserved)}
