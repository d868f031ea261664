--! prelude _clock _room
-- KEYS show, seq, channel; ARGV seconds, slow_mode body.
redis.call('HSET', KEYS[1], 'slow_mode', ARGV[1])
emit(KEYS[2], KEYS[3], ARGV[2])
return 'ok'
