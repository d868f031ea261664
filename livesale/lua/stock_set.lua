-- One row of a change of on-hand counts, in its SKU's slot: the twin of state.set_on_hand.
-- KEYS[1] the SKU's stock hash
-- ARGV[1] "prepare" or "finish", ARGV[2] the target on-hand count, ARGV[3] the count SQLite
-- had before the change
-- A SKU's counters move only while they are marked ready (built from the store of record);
-- a SKU Redis has no counters for that had no units before the change (a new product) starts
-- ready at the target.
-- prepare: changes nothing and answers {"conflict", on_hand, held, sold} when the target is
-- below what is held and sold, or {"unready"}; else it applies a fall of on-hand (units off
-- sale: safe to undo) and answers {"ok"}.
-- finish: sets the row to its target (what SQLite now holds) and answers {"ok", shortfall}:
-- above 0 when the target is below what is held and sold (its on-hand is then held + sold,
-- and nothing is available); {"unready"} changes nothing.
local f = redis.call('HMGET', KEYS[1], 'on_hand', 'held', 'sold', 'ready')
if not f[4] and not (redis.call('EXISTS', KEYS[1]) == 0 and tonumber(ARGV[3]) == 0) then
  return {'unready'}
end
local on_hand, held, sold = tonumber(f[1] or '0'), tonumber(f[2] or '0'), tonumber(f[3] or '0')
local target = tonumber(ARGV[2])

local function put(n)
  redis.call('HSET', KEYS[1], 'on_hand', n, 'available', n - held - sold, 'held', held,
    'sold', sold, 'ready', 1)
end

if ARGV[1] == 'prepare' then
  if target < held + sold then return {'conflict', on_hand, held, sold} end
  if target < on_hand then put(target) end
  return {'ok'}
end
local n = math.max(target, held + sold)
if n ~= on_hand or not f[4] then put(n) end
return {'ok', n - target}
