-- Set or adjust one SKU's on-hand count; the twin of state.set_on_hand / state.adjust.
-- KEYS[1] stock hash, KEYS[2] ledger stream, KEYS[3] stock-ready marker
-- ARGV[1] "set" | "adjust", ARGV[2] value, ARGV[3] actor, ARGV[4] reason
-- Returns {"ok", on_hand, available, held, sold} or {"conflict", on_hand, available, held, sold},
-- or {"unready", 0, 0, 0, 0} while stock is being rebuilt from SQLite.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'unready', 0, 0, 0, 0}
end
local f = redis.call('HMGET', KEYS[1], 'on_hand', 'held', 'sold')
local on_hand = tonumber(f[1] or '0')
local held = tonumber(f[2] or '0')
local sold = tonumber(f[3] or '0')
local target
if ARGV[1] == 'set' then
  target = tonumber(ARGV[2])
else
  target = on_hand + tonumber(ARGV[2])
end
if target < held + sold then
  return {'conflict', on_hand, on_hand - held - sold, held, sold}
end
redis.call('HSET', KEYS[1], 'on_hand', target, 'available', target - held - sold,
  'held', held, 'sold', sold)
local now = redis.call('TIME')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*',
  'at', now[1] .. '.' .. string.format('%06d', tonumber(now[2])),
  'actor', ARGV[3], 'delta', target - on_hand, 'reason', ARGV[4])
return {'ok', target, target - held - sold, held, sold}
