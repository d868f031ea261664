--! prelude _clock _room
-- KEYS chat tail, seq, channel; ARGV line id, chat_deleted body.
local id = tonumber(ARGV[1])
if id < 1 or id > tonumber(redis.call('GET', KEYS[2]) or 0) then return 'not_found' end
for _, line in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if cjson.decode(line)['id'] == id then redis.call('LREM', KEYS[1], 1, line) end
end
emit(KEYS[2], KEYS[3], ARGV[2])
return 'ok'
