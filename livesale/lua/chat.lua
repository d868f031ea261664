--! prelude _clock _room
-- KEYS show, mutes, viewer's bucket, chat tail, seq, channel;
-- ARGV viewer id, '1' for the host, chat body, rate per s, burst, tail length, the client's
-- address ('' unknown): a mute of the viewer or of its address holds.
-- Returns {code, n}: the line id when 'ok', else how many ms to wait.
if ended(KEYS[1]) then return {'show_ended', 0} end
local now = now_ms()
if ARGV[2] ~= '1' then
  local muted = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or 0)
  if ARGV[7] ~= '' then
    muted = math.max(muted, tonumber(redis.call('HGET', KEYS[2], '@' .. ARGV[7]) or 0))
  end
  if muted > now then return {'muted', muted - now} end
  local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
  local b = redis.call('HMGET', KEYS[3], 'tokens', 'at', 'last')
  local tokens = tonumber(b[1] or burst)
  local at = tonumber(b[2] or now)
  local last = tonumber(b[3] or -1e12)
  local slow = tonumber(redis.call('HGET', KEYS[1], 'slow_mode') or 0)
  local wait = last + slow * 1000 - now
  if slow > 0 and wait > 0 then return {'slow_mode', wait} end
  local refilled = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if refilled < 1 then return {'rate_limited', math.floor((1 - refilled) * 1000 / rate)} end
  redis.call('HSET', KEYS[3], 'tokens', tostring(refilled - 1), 'at', now, 'last', now)
  redis.call('PEXPIRE', KEYS[3], slow * 1000 + 10000)
end
local seq = redis.call('INCR', KEYS[5])
local line = stamp(stamp(stamp(ARGV[3], 'seq', seq), 'id', seq), 'at', now)
redis.call('RPUSH', KEYS[4], line)
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[6]), -1)
redis.call('PUBLISH', KEYS[6], line)
return {'ok', seq}
