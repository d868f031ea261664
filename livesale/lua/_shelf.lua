-- Prelude of the hold scripts: one SKU's shelf. Every hold script takes these five keys first:
-- KEYS[1] stock hash, KEYS[2] holds hash, KEYS[3] expiry zset, KEYS[4] done zset,
-- KEYS[5] buyers hash.
local STOCK, HOLDS, EXPIRY, DONE, BUYERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

-- The SKU's counters were built from the store of record (stock_rebuild.lua, or the first
-- change of its on-hand): without the mark, Redis lost them and nothing moves until rebuilt.
local function ready()
  return redis.call('HEXISTS', STOCK, 'ready') == 1
end

local function available()
  return tonumber(redis.call('HGET', STOCK, 'available') or '0')
end

-- `units` fewer on a buyer's (or an address's) count; a count down to nothing leaves the
-- hash (the twin of state._less), so it holds only those who hold or bought something.
local function less(field, units)
  if redis.call('HINCRBY', BUYERS, field, -units) <= 0 then
    redis.call('HDEL', BUYERS, field)
  end
end

-- A held hold ends as `state` (the twin of state._end_hold): its units go back to available
-- and leave the buyer's (and its address's) count, and it is filed as done at `now`. Returns the hold's new JSON.
local function end_hold(h, state, now)
  redis.call('HINCRBY', STOCK, 'available', h.qty)
  redis.call('HINCRBY', STOCK, 'held', -h.qty)
  less(h.show .. '|' .. h.viewer, h.qty)
  if h.addr and h.addr ~= '' then
    less(h.show .. '|@' .. h.addr, h.qty)
  end
  h.state = state
  local encoded = cjson.encode(h)
  redis.call('HSET', HOLDS, h.id, encoded)
  redis.call('ZREM', EXPIRY, h.id)
  redis.call('ZADD', DONE, now, h.id)
  return encoded
end

-- Expire up to `limit` held holds whose time is up, oldest expiry first (the twin of
-- state.expire); ids of holds no longer held leave the expiry set. Returns the holds' JSON.
local function expire_due(now, limit)
  local expired = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', now, 'LIMIT', 0, limit)) do
    local raw = redis.call('HGET', HOLDS, id)
    local h = raw and cjson.decode(raw)
    if h and h.state == 'held' then
      expired[#expired + 1] = end_hold(h, 'expired', now)
    else
      redis.call('ZREM', EXPIRY, id)
    end
  end
  return expired
end
