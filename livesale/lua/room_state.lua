-- The room as one snapshot reads it, as of one sequence number (a script runs alone).
-- KEYS[1] the show's sequence, KEYS[2] its mirror, KEYS[3] request votes, KEYS[4] request
-- order, KEYS[5] chat tail, KEYS[6] the viewer's plants, KEYS[7] the viewer's back-in-stock
-- wishes, KEYS[8] the show's plant counts, KEYS[9] its mutes
-- ARGV[1] viewer id, ARGV[2] '@' .. the viewer's address
-- Returns {seq, {featured, slow_mode}, votes (flat), order (flat), chat, planted, notifying,
-- plants (flat), {muted until (viewer), muted until (address)}}.
return {
  redis.call('GET', KEYS[1]) or '0',
  redis.call('HMGET', KEYS[2], 'featured', 'slow_mode'),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('LRANGE', KEYS[5], 0, -1),
  redis.call('SMEMBERS', KEYS[6]),
  redis.call('SMEMBERS', KEYS[7]),
  redis.call('HGETALL', KEYS[8]),
  redis.call('HMGET', KEYS[9], ARGV[1], ARGV[2]),
}
