--! prelude _clock
-- The on-hand counts of many SKUs set as one change, in two steps around the SQLite commit
-- (livesale/catalogue/store.py says why); each row is the twin of state.set_on_hand.
-- KEYS[1] stock-ready marker, KEYS[2] the open change (hash id, until), then each row's
-- stock hash
-- ARGV[1] "prepare" or "finish", ARGV[2] the change's id, ARGV[3] its lease (ms), then each
-- row's target on-hand count
-- prepare: changes nothing and answers {"unready"} while stock is rebuilt, {"busy"} while
-- another change is open, {"interrupted"} when an open change outlived its lease (its process
-- died: the stock watch rebuilds stock), or {"conflict", row, on_hand, held, sold, ...} for
-- every row whose target is below what is held and sold; else it applies the rows whose
-- on-hand falls (units off sale: safe to undo), opens the change and answers {"ok"}.
-- finish: sets every row to its target (what SQLite now holds), closes the change and answers
-- {"ok", row, shortfall, ...} for every row whose target is below what is held and sold (by
-- the shortfall: its on-hand is then held + sold, and nothing is available).
local rows = #KEYS - 2
local now = now_ms()

local function counts(i)
  local f = redis.call('HMGET', KEYS[2 + i], 'on_hand', 'held', 'sold')
  return {tonumber(f[1] or '0'), tonumber(f[2] or '0'), tonumber(f[3] or '0')}
end

local function put(i, on_hand, c)
  redis.call('HSET', KEYS[2 + i], 'on_hand', on_hand, 'available', on_hand - c[2] - c[3])
end

if ARGV[1] == 'prepare' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'unready'} end
  local open = redis.call('HMGET', KEYS[2], 'id', 'until')
  if open[1] and open[1] ~= ARGV[2] then
    if tonumber(open[2]) > now then return {'busy'} end
    return {'interrupted'}
  end
  local refused, seen = {'conflict'}, {}
  for i = 1, rows do
    local c = counts(i)
    seen[i] = c
    if tonumber(ARGV[3 + i]) < c[2] + c[3] then
      for _, v in ipairs({i, c[1], c[2], c[3]}) do refused[#refused + 1] = v end
    end
  end
  if #refused > 1 then return refused end
  for i = 1, rows do
    local target = tonumber(ARGV[3 + i])
    if target < seen[i][1] then put(i, target, seen[i]) end
  end
  redis.call('HSET', KEYS[2], 'id', ARGV[2], 'until', now + tonumber(ARGV[3]))
  return {'ok'}
end

local out = {'ok'}
for i = 1, rows do
  local c = counts(i)
  local on_hand = math.max(tonumber(ARGV[3 + i]), c[2] + c[3])
  if on_hand ~= c[1] then put(i, on_hand, c) end
  if on_hand > tonumber(ARGV[3 + i]) then
    out[#out + 1] = i
    out[#out + 1] = on_hand - tonumber(ARGV[3 + i])
  end
end
if redis.call('HGET', KEYS[2], 'id') == ARGV[2] then redis.call('DEL', KEYS[2]) end
return out
