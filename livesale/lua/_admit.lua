-- Prelude: a buy click's first step, the show's own rules, which read keys of the show and
-- of no one SKU. admit.lua runs it alone, in the show's slot (reserve.lua then takes the stock
-- in the SKU's slot, and a refusal there gives back what this step claimed: unadmit.lua);
-- click.lua checks it, takes the stock and claims only for a hold made, in one call.
-- K[1] show hash, K[2] line-up hash, K[3] idempotency record, K[4] the show's
-- bans, K[5] the viewer's live holds in the show, K[6] the address's live holds in the
-- show, K[7] the address's bucket of buy clicks in the show
-- A[1] hold id, A[2] viewer id, A[3] sku, A[4] qty, A[5] hold ttl ms,
-- A[6] idempotency ttl s, A[7] the client's address ("": not counted), A[8] how many
-- buyers' limits one address may take, A[9] how many holds one viewer may have live at once
-- in the show (0: no cap; an address may have A[8] times as many), A[10] the bucket's
-- burst (0: no rate limit), A[11] its refill per second
-- Answers {status, hold id, info1, info2, expiry ms}: 'ok' (the hold id is claimed for the
-- click's idempotency key and counted live until the expiry), 'existing' (the key's earlier
-- hold), 'rate_limited' (ms to wait in info1), 'mismatch', 'not_live' (state in info1),
-- 'banned', 'not_on_lineup', 'hold_limit' or 'address_hold_limit' (cap, count).

-- The checks, which write only the rate's bucket (and drop live holds past their expiry):
-- the refusal's answer, or nil and the expiry a hold made now would have.
local function admit_check(K, A)
  local now = now_ms()
  if tonumber(A[10]) > 0 then
    local wait = take_tokens(K[7], tonumber(A[10]), tonumber(A[11]), 1, now)
    if wait > 0 then
      return {'rate_limited', '', wait, '', 0}
    end
  end
  local record = redis.call('GET', K[3])
  if record then
    local sep = string.find(record, '|', 1, true)
    if string.sub(record, sep + 1) ~= A[3] .. '|' .. A[4] then
      return {'mismatch', '', '', '', 0}
    end
    return {'existing', string.sub(record, 1, sep - 1), '', '', 0}
  end
  -- A live show sells, and an ended one while its replay does (the mirror's `replay` flag).
  local show_state, replay = unpack(redis.call('HMGET', K[1], 'state', 'replay'))
  if show_state ~= 'live' and not (show_state == 'ended' and replay == '1') then
    return {'not_live', '', show_state or '', '', 0}
  end
  local addr = A[7]
  if redis.call('HEXISTS', K[4], A[2]) == 1
      or (addr ~= '' and redis.call('HEXISTS', K[4], '@' .. addr) == 1) then
    return {'banned', '', '', '', 0}
  end
  if redis.call('HEXISTS', K[2], A[3]) == 0 then
    return {'not_on_lineup', '', '', '', 0}
  end
  -- Holds at once across the show's items: live ones only (scored by expiry).
  local live_cap, multiple = tonumber(A[9]), tonumber(A[8])
  if live_cap > 0 then
    redis.call('ZREMRANGEBYSCORE', K[5], '-inf', now)
    local mine = redis.call('ZCARD', K[5])
    if mine >= live_cap then
      return {'hold_limit', '', live_cap, mine, 0}
    end
    if addr ~= '' and multiple > 0 then
      redis.call('ZREMRANGEBYSCORE', K[6], '-inf', now)
      local theirs = redis.call('ZCARD', K[6])
      if theirs >= live_cap * multiple then
        return {'address_hold_limit', '', live_cap * multiple, theirs, 0}
      end
    end
  end
  return nil, now + tonumber(A[5])
end

-- The claim of a click that passed the checks: its hold id, live until `exp` among its
-- viewer's and address's holds (when they are capped), and its idempotency record.
local function admit_claim(K, A, exp)
  if tonumber(A[9]) > 0 then
    redis.call('ZADD', K[5], exp, A[1])
    redis.call('PEXPIRE', K[5], tonumber(A[5]) + 1000)
    if A[7] ~= '' and tonumber(A[8]) > 0 then
      redis.call('ZADD', K[6], exp, A[1])
      redis.call('PEXPIRE', K[6], tonumber(A[5]) + 1000)
    end
  end
  redis.call('SET', K[3], A[1] .. '|' .. A[3] .. '|' .. A[4], 'EX', tonumber(A[6]))
  return {'ok', A[1], '', '', exp}
end

local function admit(K, A)
  local refused, exp = admit_check(K, A)
  if refused then
    return refused
  end
  return admit_claim(K, A, exp)
end
