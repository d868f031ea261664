-- A buy click: the twin of state.reserve. The hot path, so one script does it all.
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash, KEYS[6] show hash, KEYS[7] line-up hash, KEYS[8] idempotency record,
-- KEYS[9] stock-ready marker, KEYS[10] show channel, KEYS[11] set of SKUs with holds
-- ARGV[1] hold id, ARGV[2] show id, ARGV[3] viewer id, ARGV[4] sku, ARGV[5] qty,
-- ARGV[6] hold ttl ms, ARGV[7] idempotency key, ARGV[8] idempotency ttl s, ARGV[9] reap batch
-- Returns {status, available, hold json, info1, info2, reaped hold json...}
if redis.call('EXISTS', KEYS[9]) == 0 then
  return {'unready', 0, '', '', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function end_hold(h, state)
  redis.call('HINCRBY', KEYS[1], 'available', h.qty)
  redis.call('HINCRBY', KEYS[1], 'held', -h.qty)
  redis.call('HINCRBY', KEYS[5], h.show .. '|' .. h.viewer, -h.qty)
  h.state = state
  redis.call('HSET', KEYS[2], h.id, cjson.encode(h))
  redis.call('ZREM', KEYS[3], h.id)
  redis.call('ZADD', KEYS[4], now, h.id)
end

-- Reap a few expired holds first, so stock is right even with every sweeper down.
local reaped = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[9]))
for _, id in ipairs(due) do
  local raw = redis.call('HGET', KEYS[2], id)
  local h = raw and cjson.decode(raw)
  if h and h.state == 'held' then
    end_hold(h, 'expired')
    reaped[#reaped + 1] = cjson.encode(h)
  else
    redis.call('ZREM', KEYS[3], id)
  end
end

local function answer(status, hold, info1, info2)
  local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
  local out = {status, available, hold or '', info1 or '', info2 or ''}
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
  return answer('existing', redis.call('HGET', KEYS[2], string.sub(record, 1, sep - 1)))
end

local show_state = redis.call('HGET', KEYS[6], 'state')
if show_state ~= 'live' then
  return answer('not_live', nil, show_state or '')
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

local buyer = ARGV[2] .. '|' .. ARGV[3]
local current = tonumber(redis.call('HGET', KEYS[5], buyer) or '0')
if limit > 0 and current + qty > limit then
  return answer('limit', nil, limit, current)
end
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
if available < qty then
  return answer('sold_out')
end

local h = {id = ARGV[1], sku = sku, show = ARGV[2], viewer = ARGV[3], qty = qty,
  amount = amount, currency = currency, exp = now + tonumber(ARGV[6]), state = 'held',
  order = '', idem = ARGV[7]}
local encoded = cjson.encode(h)
redis.call('HINCRBY', KEYS[1], 'available', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
redis.call('HSET', KEYS[2], h.id, encoded)
redis.call('ZADD', KEYS[3], h.exp, h.id)
redis.call('HINCRBY', KEYS[5], buyer, qty)
redis.call('SET', KEYS[8], h.id .. '|' .. fp, 'EX', tonumber(ARGV[8]))
redis.call('SADD', KEYS[11], sku)
redis.call('PUBLISH', KEYS[10], cjson.encode({type = 'stock', sku = sku,
  available = available - qty}))
redis.call('PUBLISH', KEYS[10], cjson.encode({type = 'hold', viewer_id = h.viewer,
  hold = {hold_id = h.id, show_id = h.show, sku = sku, qty = qty, state = 'held',
    expires_at = h.exp / 1000, price = {amount = amount, currency = currency},
    total = {amount = amount * qty, currency = currency}}}))
return answer('ok', encoded)
