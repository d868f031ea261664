-- Rebuild one SKU's counters from SQLite's figures plus the holds Redis still has, and mark
-- them ready (the hold scripts refuse to move a SKU's stock without the mark).
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] buyers hash,
-- KEYS[5] returned hash (forgotten: SQLite's figures already count what came back)
-- ARGV[1] on_hand (SQLite), ARGV[2] units sold by confirmed orders (SQLite),
-- ARGV[3] n, then n hold ids of orders SQLite has authorized but not yet confirmed,
-- then pairs <show>|<viewer>, units bought (SQLite).
-- Returns {on_hand, available, held, sold, shortfall}: shortfall > 0 means SQLite's on-hand
-- is below what is held and sold (reported; available is then 0).
local on_hand = tonumber(ARGV[1])
local sold = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local buyers = {}
local i = 4 + n
while i < #ARGV do
  buyers[ARGV[i]] = tonumber(ARGV[i + 1])
  i = i + 2
end
-- An order confirmed in Redis whose SQLite row still says authorized is a sale.
for j = 4, 3 + n do
  local raw = redis.call('HGET', KEYS[2], ARGV[j])
  if raw then
    local h = cjson.decode(raw)
    if h.state == 'confirmed' then
      sold = sold + h.qty
      local b = h.show .. '|' .. h.viewer
      buyers[b] = (buyers[b] or 0) + h.qty
    end
  end
end
local held = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local raw = redis.call('HGET', KEYS[2], id)
  local h = raw and cjson.decode(raw)
  if h and h.state == 'held' then
    held = held + h.qty
    local b = h.show .. '|' .. h.viewer
    buyers[b] = (buyers[b] or 0) + h.qty
    if h.addr and h.addr ~= '' then
      local a = h.show .. '|@' .. h.addr
      buyers[a] = (buyers[a] or 0) + h.qty
    end
  else
    redis.call('ZREM', KEYS[3], id)
  end
end
local available = on_hand - held - sold
local shortfall = 0
if available < 0 then
  shortfall = -available
  available = 0
  on_hand = held + sold
end
redis.call('HSET', KEYS[1], 'on_hand', on_hand, 'available', available, 'held', held,
  'sold', sold, 'ready', 1)
redis.call('DEL', KEYS[4], KEYS[5])
for b, units in pairs(buyers) do
  redis.call('HSET', KEYS[4], b, units)
end
return {on_hand, available, held, sold, shortfall}
