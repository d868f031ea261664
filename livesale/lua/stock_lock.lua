--! prelude _clock
-- Open or close a change of on-hand counts (livesale/catalogue/store.py says why there are two
-- steps around the SQLite commit): at most one is open at a time, for every process.
-- KEYS[1] stock-ready marker, KEYS[2] the open change (hash id, until): one slot, `{stock}`
-- ARGV[1] "open" or "close", ARGV[2] the change's id, ARGV[3] its lease (ms)
-- open answers "unready" while stock is rebuilt, "busy" while another change is open,
-- "interrupted" when an open change outlived its lease (its process died: the stock watch
-- rebuilds stock), else opens the change: "ok". close closes it if it is still open: "ok".
if ARGV[1] == 'close' then
  if redis.call('HGET', KEYS[2], 'id') == ARGV[2] then redis.call('DEL', KEYS[2]) end
  return 'ok'
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unready' end
local open = redis.call('HMGET', KEYS[2], 'id', 'until')
if open[1] and open[1] ~= ARGV[2] then
  if tonumber(open[2]) > now_ms() then return 'busy' end
  return 'interrupted'
end
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'until', now_ms() + tonumber(ARGV[3]))
return 'ok'
