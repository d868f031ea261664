--! prelude _clock _rate _shelf _admit _reserve _unadmit
-- A whole buy click in one call, on a single Redis only (its keys are of the show's slot and of
-- the SKU's, which a Redis Cluster cannot run together): admit.lua's step, then reserve.lua's,
-- then unadmit.lua's give-back if the second refused. The steps and their answers are the two
-- scripts' own; atomic as a whole, so no other click ever sees it between its steps.
-- KEYS[1..7] reserve.lua's keys (the shelf first), KEYS[8..14] admit.lua's, KEYS[15] the
-- sweepers' index of SKUs with holds
-- ARGV[1..11] admit.lua's arguments, ARGV[12] show id, ARGV[13] idempotency key, ARGV[14] reap
-- batch, ARGV[15] the per-buyer limit of an item whose line-up sets none (0: none), ARGV[16]
-- how long past a new hold's expiry the index keeps its SKU (ms)
-- Returns {'admit', admit.lua's answer...} for a click the first step did not let through,
-- else {'reserve', reserve.lua's answer...}.
local shown = {KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]}
local admitted = admit(shown, ARGV)
if admitted[1] ~= 'ok' then
  return {'admit', unpack(admitted)}
end
local hold_id, sku, qty = ARGV[1], ARGV[3], ARGV[4]
local reserved = take_stock(KEYS, {hold_id, ARGV[12], ARGV[2], sku, qty, admitted[5], ARGV[13],
  ARGV[14], ARGV[15], ARGV[7], ARGV[8]})
if reserved[1] == 'ok' then
  redis.call('ZADD', KEYS[15], 'GT', admitted[5] + tonumber(ARGV[16]), sku)
else
  give_back(KEYS[10], KEYS[12], KEYS[13], hold_id, hold_id .. '|' .. sku .. '|' .. qty)
end
return {'reserve', unpack(reserved)}
