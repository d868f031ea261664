--! prelude _clock _shelf _rate
-- A buy click: the twin of state.reserve. The hot path, so one script does it all.
-- KEYS[1..5] the shelf, KEYS[6] show hash, KEYS[7] line-up hash, KEYS[8] idempotency record,
-- KEYS[9] stock-ready marker, KEYS[10] show channel, KEYS[11] set of SKUs with holds,
-- KEYS[12] the show's bans, KEYS[13] the viewer's live holds in the show, KEYS[14] the
-- address's live holds in the show, KEYS[15] the address's rate bucket of buy clicks
-- ARGV[1] hold id, ARGV[2] show id, ARGV[3] viewer id, ARGV[4] sku, ARGV[5] qty,
-- ARGV[6] hold ttl ms, ARGV[7] idempotency key, ARGV[8] idempotency ttl s, ARGV[9] reap batch,
-- ARGV[10] the per-buyer limit of an item whose line-up sets none (0: none), ARGV[11] the
-- client's address ("": not counted), ARGV[12] how many buyers' limits one address may take,
-- ARGV[13] how many holds one viewer may have live at once in the show (0: no cap; an address
-- may have ARGV[12] times as many), ARGV[14] the bucket's burst (0: no rate limit), ARGV[15]
-- its refill per second
-- Returns {status, available, hold json, info1, info2, reaped hold json...}; 'rate_limited'
-- carries the ms to wait in info1. The rate limit is taken here, in the click's one call.
if redis.call('EXISTS', KEYS[9]) == 0 then
  return {'unready', 0, '', '', ''}
end
local now = now_ms()
if tonumber(ARGV[14]) > 0 then
  local wait = take_tokens(KEYS[15], tonumber(ARGV[14]), tonumber(ARGV[15]), 1, now)
  if wait > 0 then
    return {'rate_limited', 0, '', wait, ''}
  end
end

-- Reap a few expired holds first, so stock is right even with every sweeper down.
local reaped = expire_due(now, tonumber(ARGV[9]))

local function answer(status, hold, info1, info2)
  local out = {status, available(), hold or '', info1 or '', info2 or ''}
  for _, r in ipairs(reaped) do out[#out + 1] = r end
  return out
end

local sku, qty = ARGV[4], tonumber(ARGV[5])
local fp = sku .. '|' .. qty
local record = redis.call('GET', KEYS[8])
if record then
  local sep = string.find(record, '|', 1, true)
  if string.sub(record, sep + 1) ~= fp then
    return answer('mismatch')
  end
  return answer('existing', redis.call('HGET', HOLDS, string.sub(record, 1, sep - 1)))
end

-- A live show sells, and an ended one while its replay does (the mirror's `replay` flag).
local show_state, replay = unpack(redis.call('HMGET', KEYS[6], 'state', 'replay'))
if show_state ~= 'live' and not (show_state == 'ended' and replay == '1') then
  return answer('not_live', nil, show_state or '')
end
if redis.call('HEXISTS', KEYS[12], ARGV[3]) == 1
    or (ARGV[11] ~= '' and redis.call('HEXISTS', KEYS[12], '@' .. ARGV[11]) == 1) then
  return answer('banned')
end
local offer = redis.call('HGET', KEYS[7], sku)
if not offer then
  return answer('not_on_lineup')
end
local p1 = string.find(offer, '|', 1, true)
local p2 = string.find(offer, '|', p1 + 1, true)
local amount = tonumber(string.sub(offer, 1, p1 - 1))
local currency = string.sub(offer, p1 + 1, p2 - 1)
local limit = tonumber(string.sub(offer, p2 + 1))
if limit == 0 then
  limit = tonumber(ARGV[10])
end

local buyer = ARGV[2] .. '|' .. ARGV[3]
local current = tonumber(redis.call('HGET', BUYERS, buyer) or '0')
if limit > 0 and current + qty > limit then
  return answer('limit', nil, limit, current)
end
-- One address (a script minting viewer tokens) holds and buys at most a crowd's share.
local addr = ARGV[11]
local cap = limit * tonumber(ARGV[12])
if addr ~= '' and cap > 0 then
  local used = tonumber(redis.call('HGET', BUYERS, ARGV[2] .. '|@' .. addr) or '0')
  if used + qty > cap then
    return answer('address_limit', nil, cap, used)
  end
end
-- Holds at once across the show's items: live ones only (scored by expiry).
local live_cap = tonumber(ARGV[13])
if live_cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[13], '-inf', now)
  local mine = redis.call('ZCARD', KEYS[13])
  if mine >= live_cap then
    return answer('hold_limit', nil, live_cap, mine)
  end
  if addr ~= '' and tonumber(ARGV[12]) > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[14], '-inf', now)
    local theirs = redis.call('ZCARD', KEYS[14])
    if theirs >= live_cap * tonumber(ARGV[12]) then
      return answer('address_hold_limit', nil, live_cap * tonumber(ARGV[12]), theirs)
    end
  end
end
local left = available()
if left < qty then
  return answer('sold_out')
end

local h = {id = ARGV[1], sku = sku, show = ARGV[2], viewer = ARGV[3], qty = qty,
  amount = amount, currency = currency, exp = now + tonumber(ARGV[6]), state = 'held',
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
if live_cap > 0 then
  redis.call('ZADD', KEYS[13], h.exp, h.id)
  redis.call('PEXPIRE', KEYS[13], tonumber(ARGV[6]) + 1000)
  if addr ~= '' and tonumber(ARGV[12]) > 0 then
    redis.call('ZADD', KEYS[14], h.exp, h.id)
    redis.call('PEXPIRE', KEYS[14], tonumber(ARGV[6]) + 1000)
  end
end
redis.call('SET', KEYS[8], h.id .. '|' .. fp, 'EX', tonumber(ARGV[8]))
redis.call('SADD', KEYS[11], sku)
redis.call('PUBLISH', KEYS[10], cjson.encode({type = 'stock', sku = sku,
  available = left - qty}))
redis.call('PUBLISH', KEYS[10], cjson.encode({type = 'hold', viewer_id = h.viewer,
  hold = {hold_id = h.id, show_id = h.show, sku = sku, qty = qty, state = 'held',
    expires_at = h.exp / 1000, price = {amount = amount, currency = currency},
    total = {amount = amount * qty, currency = currency}}}))
return answer('ok', encoded)
