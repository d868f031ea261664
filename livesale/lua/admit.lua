--! prelude _clock _rate
-- A buy click's first step, in the show's slot: the show's own rules, which read keys of the
-- show and of no one SKU. reserve.lua then takes the stock in the SKU's slot; a refusal there
-- gives back what this step took (unadmit.lua).
-- KEYS[1] show hash, KEYS[2] line-up hash, KEYS[3] idempotency record, KEYS[4] the show's
-- bans, KEYS[5] the viewer's live holds in the show, KEYS[6] the address's live holds in the
-- show, KEYS[7] the address's bucket of buy clicks in the show
-- ARGV[1] hold id, ARGV[2] viewer id, ARGV[3] sku, ARGV[4] qty, ARGV[5] hold ttl ms,
-- ARGV[6] idempotency ttl s, ARGV[7] the client's address ("": not counted), ARGV[8] how many
-- buyers' limits one address may take, ARGV[9] how many holds one viewer may have live at once
-- in the show (0: no cap; an address may have ARGV[8] times as many), ARGV[10] the bucket's
-- burst (0: no rate limit), ARGV[11] its refill per second
-- Returns {status, hold id, info1, info2, expiry ms}: 'ok' (the hold id is claimed for the
-- click's idempotency key and counted live until the expiry), 'existing' (the key's earlier
-- hold), 'rate_limited' (ms to wait in info1), 'mismatch', 'not_live' (state in info1),
-- 'banned', 'not_on_lineup', 'hold_limit' or 'address_hold_limit' (cap, count).
local now = now_ms()
if tonumber(ARGV[10]) > 0 then
  local wait = take_tokens(KEYS[7], tonumber(ARGV[10]), tonumber(ARGV[11]), 1, now)
  if wait > 0 then
    return {'rate_limited', '', wait, '', 0}
  end
end
local fp = ARGV[3] .. '|' .. ARGV[4]
local record = redis.call('GET', KEYS[3])
if record then
  local sep = string.find(record, '|', 1, true)
  if string.sub(record, sep + 1) ~= fp then
    return {'mismatch', '', '', '', 0}
  end
  return {'existing', string.sub(record, 1, sep - 1), '', '', 0}
end
-- A live show sells, and an ended one while its replay does (the mirror's `replay` flag).
local show_state, replay = unpack(redis.call('HMGET', KEYS[1], 'state', 'replay'))
if show_state ~= 'live' and not (show_state == 'ended' and replay == '1') then
  return {'not_live', '', show_state or '', '', 0}
end
local addr = ARGV[7]
if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1
    or (addr ~= '' and redis.call('HEXISTS', KEYS[4], '@' .. addr) == 1) then
  return {'banned', '', '', '', 0}
end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then
  return {'not_on_lineup', '', '', '', 0}
end
-- Holds at once across the show's items: live ones only (scored by expiry).
local exp = now + tonumber(ARGV[5])
local live_cap, multiple = tonumber(ARGV[9]), tonumber(ARGV[8])
if live_cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local mine = redis.call('ZCARD', KEYS[5])
  if mine >= live_cap then
    return {'hold_limit', '', live_cap, mine, 0}
  end
  if addr ~= '' and multiple > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
    local theirs = redis.call('ZCARD', KEYS[6])
    if theirs >= live_cap * multiple then
      return {'address_hold_limit', '', live_cap * multiple, theirs, 0}
    end
  end
  redis.call('ZADD', KEYS[5], exp, ARGV[1])
  redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[5]) + 1000)
  if addr ~= '' and multiple > 0 then
    redis.call('ZADD', KEYS[6], exp, ARGV[1])
    redis.call('PEXPIRE', KEYS[6], tonumber(ARGV[5]) + 1000)
  end
end
redis.call('SET', KEYS[3], ARGV[1] .. '|' .. fp, 'EX', tonumber(ARGV[6]))
return {'ok', ARGV[1], '', '', exp}
