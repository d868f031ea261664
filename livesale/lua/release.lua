--! prelude _clock _shelf
-- Give a held hold back: the twin of state.release.
-- KEYS[1..5] the shelf, KEYS[6] the SKU's channel (the hold then leaves its viewer's and
-- address's live holds in the show's slot: unadmit.lua)
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
redis.call('PUBLISH', KEYS[6], cjson.encode({type = 'stock', show = h.show, sku = h.sku,
  available = available()}))
return {'ok', available(), raw}
