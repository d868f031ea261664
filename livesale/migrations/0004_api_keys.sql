-- Merchant API keys can be listed and revoked: when each was last used, and when revoked (a
-- revoked key stays listed, so the merchant sees what was cut off and when).
ALTER TABLE api_keys ADD COLUMN last_used_at REAL;
ALTER TABLE api_keys ADD COLUMN revoked_at REAL;
