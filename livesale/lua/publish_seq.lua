--! prelude _clock _room
-- KEYS seq, channel; ARGV body. Publish one sequenced event; returns its number.
return emit(KEYS[1], KEYS[2], ARGV[1])
