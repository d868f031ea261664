-- Prelude: give back what a buy click's first step (admit()) took when its second step
-- (take_stock()) refused it: the idempotency record at `record_key`, if it is still the
-- click's `record`, and the hold's place among the live holds of its viewer and address (the
-- zsets `viewer_set`, `address_set`). Returns the number of entries removed.
local function give_back(record_key, viewer_set, address_set, hold_id, record)
  local n = redis.call('ZREM', viewer_set, hold_id) + redis.call('ZREM', address_set, hold_id)
  if redis.call('GET', record_key) == record then
    n = n + redis.call('DEL', record_key)
  end
  return n
end
