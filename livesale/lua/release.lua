--! prelude _clock _shelf
-- Give a held hold back: the twin of state.release.
-- KEYS[1..5] the shelf, KEYS[6] show channel, KEYS[7..8] the viewer's and the address's live
-- holds in the show (the hold leaves them)
-- ARGV[1] hold id, ARGV[2] viewer id ('' when the system releases it)
-- Returns {status, available, hold json}
local raw = redis.call('HGET', HOLDS, ARGV[1])
if not raw then
  return {'gone', available(), ''}
end
local h = cjson.decode(raw)
if ARGV[2] ~= '' and h.viewer ~= ARGV[2] then
  return {'forbidden', available(), ''}
end
if h.state ~= 'held' then
  return {'not_held', available(), raw}
end
raw = end_hold(h, 'released', now_ms())
redis.call('ZREM', KEYS[7], h.id)
redis.call('ZREM', KEYS[8], h.id)
redis.call('PUBLISH', KEYS[6], cjson.encode({type = 'stock', sku = h.sku,
  available = available()}))
return {'ok', available(), raw}
