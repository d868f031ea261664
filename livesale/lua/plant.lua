--! prelude _clock _room
-- KEYS show, lineup, plants, viewer's planted set, channel;
-- ARGV sku, viewer id, '1'|'0', how long (ms) the planted set outlives its last change.
-- Publishes ``plants`` (for hosts) and ``planted`` (for the viewer); both unsequenced.
if ended(KEYS[1]) then return {'show_ended', 0} end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return {'not_in_lineup', 0} end
local count
if ARGV[3] == '1' then
  if redis.call('SADD', KEYS[4], sku) == 1 then
    count = redis.call('HINCRBY', KEYS[3], sku, 1)
  end
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
elseif redis.call('SREM', KEYS[4], sku) == 1 then
  count = redis.call('HINCRBY', KEYS[3], sku, -1)
end
local sku_json = cjson.encode(sku)
if count ~= nil then
  redis.call('PUBLISH', KEYS[5], '{"type":"plants","seq":0,"sku":' .. sku_json
    .. ',"count":' .. string.format('%d', count) .. '}')
else
  count = tonumber(redis.call('HGET', KEYS[3], sku) or 0)
end
local want = 'false'
if ARGV[3] == '1' then want = 'true' end
redis.call('PUBLISH', KEYS[5], '{"type":"planted","seq":0,"sku":' .. sku_json .. ',"want":'
  .. want .. ',"viewer_id":' .. cjson.encode(ARGV[2]) .. '}')
return {'ok', count}
