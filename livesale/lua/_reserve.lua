-- Prelude (after _clock and _shelf): a buy click's second step, in the SKU's slot, once admit()
-- let it through: the twin of state.reserve from the per-buyer limit on. reserve.lua runs it
-- alone, click.lua right after the first step.
-- K[1..5] the shelf, K[6] the SKU's offers (show id -> amount|currency|limit|mode|until,
-- while that show sells it; until: ms when a replay's sales end, 0 for none), K[7] the SKU's
-- channel
-- A[1] hold id, A[2] show id, A[3] viewer id, A[4] sku, A[5] qty,
-- A[6] the hold's expiry (ms, Redis clock: admit's), A[7] idempotency key,
-- A[8] reap batch, A[9] the per-buyer limit of an item whose line-up sets none
-- (0: none), A[10] the client's address ("": not counted), A[11] how many buyers'
-- limits one address may take
-- Returns {status, available, hold json, info1, info2, reaped hold json...}.
local function take_stock(K, A)
  if not ready() then
    return {'unready', 0, '', '', ''}
  end
  local now = now_ms()

  -- Reap a few expired holds first, so stock is right even with every sweeper down.
  local reaped = expire_due(now, tonumber(A[8]))

  local function answer(status, hold, info1, info2)
    local out = {status, available(), hold or '', info1 or '', info2 or ''}
    for _, r in ipairs(reaped) do out[#out + 1] = r end
    return out
  end

  local sku, qty = A[4], tonumber(A[5])
  -- The show's offer of this SKU, kept in step with the show's mirror: a show that stopped
  -- selling a moment after admit let the click through sells nothing more.
  local offer = redis.call('HGET', K[6], A[2])
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
    limit = tonumber(A[9])
  end

  local buyer = A[2] .. '|' .. A[3]
  local current = tonumber(redis.call('HGET', BUYERS, buyer) or '0')
  if limit > 0 and current + qty > limit then
    return answer('limit', nil, limit, current)
  end
  -- One address (a script minting viewer tokens) holds and buys at most a crowd's share.
  local addr = A[10]
  local cap = limit * tonumber(A[11])
  if addr ~= '' and cap > 0 then
    local used = tonumber(redis.call('HGET', BUYERS, A[2] .. '|@' .. addr) or '0')
    if used + qty > cap then
      return answer('address_limit', nil, cap, used)
    end
  end
  local left = available()
  if left < qty then
    return answer('sold_out')
  end

  local h = {id = A[1], sku = sku, show = A[2], viewer = A[3], qty = qty,
    amount = amount, currency = currency, exp = tonumber(A[6]), state = 'held',
    order = '', idem = A[7], addr = addr}
  local encoded = cjson.encode(h)
  redis.call('HINCRBY', STOCK, 'available', -qty)
  redis.call('HINCRBY', STOCK, 'held', qty)
  redis.call('HSET', HOLDS, h.id, encoded)
  redis.call('ZADD', EXPIRY, h.exp, h.id)
  redis.call('HINCRBY', BUYERS, buyer, qty)
  if addr ~= '' then
    redis.call('HINCRBY', BUYERS, A[2] .. '|@' .. addr, qty)
  end
  redis.call('PUBLISH', K[7], cjson.encode({type = 'stock', show = h.show, sku = sku,
    available = left - qty}))
  redis.call('PUBLISH', K[7], cjson.encode({type = 'hold', show = h.show, viewer_id = h.viewer,
    hold = {hold_id = h.id, show_id = h.show, sku = sku, qty = qty, state = 'held',
      expires_at = h.exp / 1000, price = {amount = amount, currency = currency},
      total = {amount = amount * qty, currency = currency}}}))
  return answer('ok', encoded)
end
