--! prelude _clock _shelf _reserve
-- A buy click's second step, in the SKU's slot, once admit.lua let it through (_reserve.lua
-- has the keys, arguments and answers).
return take_stock(KEYS, ARGV)
