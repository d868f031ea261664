--! prelude _clock _rate _admit
-- A buy click's first step, in the show's slot (_admit.lua has the keys, arguments and
-- answers).
return admit(KEYS, ARGV)
