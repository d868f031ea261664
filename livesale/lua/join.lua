--! prelude _clock _room
-- A viewer opens the room. KEYS bans, clients; ARGV viewer id, client address ('' unknown),
-- record ttl s, record ('1', or '0' for a watcher). Returns 'banned' when the viewer or its
-- address is banned from the show, else records the address the viewer joined from (for
-- moderation) and returns 'ok'.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'banned' end
if ARGV[2] ~= '' then
  if redis.call('HEXISTS', KEYS[1], '@' .. ARGV[2]) == 1 then return 'banned' end
  if ARGV[4] == '1' then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
  end
end
return 'ok'
