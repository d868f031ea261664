--! prelude _clock _room
-- KEYS show, lineup, plants, viewer's planted set, channel, plants per address;
-- ARGV sku, viewer id, '1'|'0', the client's address ('' not counted), how many viewers of
-- one address may plant one item, record ttl s, how long (ms) the planted set outlives its
-- last change.
-- Publishes ``plants`` (for hosts) and ``planted`` (for the viewer); both unsequenced.
if ended(KEYS[1]) then return {'show_ended', 0} end
local sku = ARGV[1]
if redis.call('HEXISTS', KEYS[2], sku) == 0 then return {'not_in_lineup', 0} end
local count
local crowd = sku .. '|' .. ARGV[4]
if ARGV[3] == '1' then
  if redis.call('SISMEMBER', KEYS[4], sku) == 0 then
    if ARGV[4] ~= '' then
      -- Tokens minted on one address plant no more than a crowd behind it would.
      if tonumber(redis.call('HGET', KEYS[6], crowd) or 0) >= tonumber(ARGV[5]) then
        return {'address_limit', 0}
      end
      redis.call('HINCRBY', KEYS[6], crowd, 1)
      redis.call('EXPIRE', KEYS[6], tonumber(ARGV[6]))
    end
    redis.call('SADD', KEYS[4], sku)
    count = redis.call('HINCRBY', KEYS[3], sku, 1)
  end
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
elseif redis.call('SREM', KEYS[4], sku) == 1 then
  count = redis.call('HINCRBY', KEYS[3], sku, -1)
  if ARGV[4] ~= '' and tonumber(redis.call('HGET', KEYS[6], crowd) or 0) > 0 then
    redis.call('HINCRBY', KEYS[6], crowd, -1)
  end
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
