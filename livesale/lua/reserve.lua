--! prelude _clock _shelf
-- A buy click's second step, in the SKU's slot, once admit.lua let it through: the twin of
-- state.reserve from the per-buyer limit on. One script takes the stock, so it is atomic.
-- KEYS[1..5] the shelf, KEYS[6] the SKU's offers (show id -> amount|currency|limit|mode|until,
-- while that show sells it; until: ms when a replay's sales end, 0 for none), KEYS[7] the SKU's
-- channel
-- ARGV[1] hold id, ARGV[2] show id, ARGV[3] viewer id, ARGV[4] sku, ARGV[5] qty,
-- ARGV[6] the hold's expiry (ms, Redis clock: admit's), ARGV[7] idempotency key,
-- ARGV[8] reap batch, ARGV[9] the per-buyer limit of an item whose line-up sets none
-- (0: none), ARGV[10] the client's address ("": not counted), ARGV[11] how many buyers'
-- limits one address may take
-- Returns {status, available, hold json, info1, info2, reaped hold json...}.
if not ready() then
  return {'unready', 0, '', '', ''}
end
local now = now_ms()

-- Reap a few expired holds first, so stock is right even with every sweeper down.
local reaped = expire_due(now, tonumber(ARGV[8]))

local function answer(status, hold, info1, info2)
  local out = {status, available(), hold or '', info1 or '', info2 or ''}
  for _, r in ipairs(reaped) do out[#out + 1] = r end
  return out
end

local sku, qty = ARGV[4], tonumber(ARGV[5])
-- The show's offer of this SKU, kept in step with the show's mirror: a show that stopped
-- selling a moment after admit let the click through sells nothing more.
local offer = redis.call('HGET', KEYS[6], ARGV[2])
if not offer then
  return answer('not_live', nil, '')
end
local p1 = string.find(offer, '|', 1, true)
local p2 = string.find(offer, '|', p1 + 1, true)
local p3 = string.find(offer, '|', p2 + 1, true)
local p4 = string.find(offer, '|', p3 + 1, true)
local ends = tonumber(string.sub(offer, p4 + 1))
if ends > 0 and now >= ends then
  return answer('not_live', nil, 'ended')
end
local amount = tonumber(string.sub(offer, 1, p1 - 1))
local currency = string.sub(offer, p1 + 1, p2 - 1)
local limit = tonumber(string.sub(offer, p2 + 1, p3 - 1))
if limit == 0 then
  limit = tonumber(ARGV[9])
end

local buyer = ARGV[2] .. '|' .. ARGV[3]
local current = tonumber(redis.call('HGET', BUYERS, buyer) or '0')
if limit > 0 and current + qty > limit then
  return answer('limit', nil, limit, current)
end
-- One address (a script minting viewer tokens) holds and buys at most a crowd's share.
local addr = ARGV[10]
local cap = limit * tonumber(ARGV[11])
if addr ~= '' and cap > 0 then
  local used = tonumber(redis.call('HGET', BUYERS, ARGV[2] .. '|@' .. addr) or '0')
  if used + qty > cap then
    return answer('address_limit', nil, cap, used)
  end
end
local left = available()
if left < qty then
  return answer('sold_out')
end

local h = {id = ARGV[1], sku = sku, show = ARGV[2], viewer = ARGV[3], qty = qty,
  amount = amount, currency = currency, exp = tonumber(ARGV[6]), state = 'held',
  order = '', idem = ARGV[7], addr = addr}
local encoded = cjson.encode(h)
redis.call('HINCRBY', STOCK, 'available', -qty)
redis.call('HINCRBY', STOCK, 'held', qty)
redis.call('HSET', HOLDS, h.id, encoded)
redis.call('ZADD', EXPIRY, h.exp, h.id)
redis.call('HINCRBY', BUYERS, buyer, qty)
if addr ~= '' then
  redis.call('HINCRBY', BUYERS, ARGV[2] .. '|@' .. addr, qty)
end
redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'stock', show = h.show, sku = sku,
  available = left - qty}))
redis.call('PUBLISH', KEYS[7], cjson.encode({type = 'hold', show = h.show, viewer_id = h.viewer,
  hold = {hold_id = h.id, show_id = h.show, sku = sku, qty = qty, state = 'held',
    expires_at = h.exp / 1000, price = {amount = amount, currency = currency},
    total = {amount = amount * qty, currency = currency}}}))
return answer('ok', encoded)
