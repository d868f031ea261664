--! prelude _unadmit
-- Give back what a buy click's first step (admit.lua) took when its second step (reserve.lua)
-- refused it.
-- KEYS[1] the click's idempotency record, KEYS[2] the viewer's live holds in the show,
-- KEYS[3] the address's
-- ARGV[1] hold id, ARGV[2] the record the click wrote
-- Returns the number of entries removed.
return give_back(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
