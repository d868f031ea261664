-- Prelude of the room scripts: sequence numbers, event stamps, the ranked request queue.
-- Event bodies come from Python with placeholders ("seq":0, "id":0, "at":0, "until":0);
-- stamp() fills the first occurrence, which precedes (or cannot occur inside) any user text.
local function stamp(body, field, value)
  local i, j = string.find(body, '"' .. field .. '":0', 1, true)
  return string.sub(body, 1, i - 1) .. '"' .. field .. '":' .. string.format('%d', value)
    .. string.sub(body, j + 1)
end

local function emit(seq_key, channel, body)
  local seq = redis.call('INCR', seq_key)
  redis.call('PUBLISH', channel, stamp(body, 'seq', seq))
  return seq
end

-- A show whose mirror is gone (it expired a while after the show's end) counts as ended too:
-- nothing is written for a show Redis no longer knows.
local function ended(show_key)
  local state = redis.call('HGET', show_key, 'state')
  return state == 'ended' or not state
end

-- The ranked queue: most votes first, then the request opened first (state.rank).
local function requests_body(votes_key, order_key)
  local flat = redis.call('HGETALL', votes_key)
  local items = {}
  for i = 1, #flat, 2 do
    local sku = flat[i]
    local opened = tonumber(redis.call('HGET', order_key, sku) or 0)
    items[#items + 1] = {sku, tonumber(flat[i + 1]), opened}
  end
  table.sort(items, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[1] < b[1]
  end)
  local parts = {}
  for i, it in ipairs(items) do
    parts[i] = '{"sku":' .. cjson.encode(it[1]) .. ',"votes":' .. string.format('%d', it[2]) .. '}'
  end
  return '{"type":"requests","seq":0,"queue":[' .. table.concat(parts, ',') .. ']}'
end
