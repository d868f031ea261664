--! prelude _clock _room
-- KEYS presence; ARGV process id, its viewer count (-1: only read), ttl ms.
-- Returns the viewers of every process still alive; forgets processes that stopped reporting.
local now = now_ms()
local count = tonumber(ARGV[2])
if count > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], count .. ':' .. string.format('%d', now + tonumber(ARGV[3])))
  -- Every entry is stale by then: a show nobody watches any more costs Redis nothing.
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif count == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local flat = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #flat, 2 do
  local sep = string.find(flat[i + 1], ':', 1, true)
  if tonumber(string.sub(flat[i + 1], sep + 1)) < now then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    total = total + tonumber(string.sub(flat[i + 1], 1, sep - 1))
  end
end
return total
