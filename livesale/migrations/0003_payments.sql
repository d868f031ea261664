-- Money a shop can trust: the provider's own reference, test money flagged, cancel and refund.
-- SQLite cannot change a CHECK constraint in place, so the orders table is rebuilt.
CREATE TABLE orders_new (
    id TEXT PRIMARY KEY,
    show_id TEXT NOT NULL REFERENCES shows(id),
    hold_id TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    nickname TEXT NOT NULL DEFAULT '',
    sku TEXT NOT NULL REFERENCES products(sku),
    qty INTEGER NOT NULL CHECK (qty >= 1),
    unit_amount INTEGER NOT NULL CHECK (unit_amount >= 0),
    amount INTEGER NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('pending', 'authorized', 'confirmed', 'declined', 'expired', 'cancelled', 'refunded')),
    provider TEXT NOT NULL,
    payment_status TEXT NOT NULL DEFAULT 'none',
    ship_name TEXT NOT NULL,
    ship_address TEXT NOT NULL,
    ship_email TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    -- 1 for money of the test provider: never real, flagged everywhere it goes.
    test INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1)),
    -- The provider's id of this payment (a Stripe PaymentIntent), written before money moves.
    payment_ref TEXT NOT NULL DEFAULT '',
    -- Units given back (cancelled or refunded) and the money refunded so far.
    returned_qty INTEGER NOT NULL DEFAULT 0 CHECK (returned_qty BETWEEN 0 AND qty),
    refunded_amount INTEGER NOT NULL DEFAULT 0 CHECK (refunded_amount BETWEEN 0 AND amount),
    -- Units of returned_qty already back in Redis's available count (the rest: recovery's job).
    restocked_qty INTEGER NOT NULL DEFAULT 0 CHECK (restocked_qty BETWEEN 0 AND returned_qty)
);
INSERT INTO orders_new (id, show_id, hold_id, viewer_id, nickname, sku, qty, unit_amount, amount,
    currency, state, provider, payment_status, ship_name, ship_address, ship_email, reason,
    created_at, updated_at, test)
SELECT id, show_id, hold_id, viewer_id, nickname, sku, qty, unit_amount, amount, currency, state,
    provider, payment_status, ship_name, ship_address, ship_email, reason, created_at, updated_at,
    CASE WHEN provider = 'test' THEN 1 ELSE 0 END
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_show ON orders (show_id, state);
CREATE INDEX orders_state ON orders (state, updated_at);
CREATE INDEX orders_hold ON orders (hold_id);
CREATE INDEX orders_payment_ref ON orders (payment_ref) WHERE payment_ref != '';
-- At most one order per hold is in flight or confirmed; a declined one may be retried.
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id)
    WHERE state IN ('pending', 'authorized', 'confirmed');

-- Refunds, one row per request: written before the provider is asked, so a crash in between is
-- finished (never repeated) at start-up. ``key`` is the provider's idempotency key.
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders(id),
    -- 0 for money refunded at the provider by hand, without units coming back.
    qty INTEGER NOT NULL CHECK (qty >= 0),
    amount INTEGER NOT NULL CHECK (amount >= 0),
    key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    outcome TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX refunds_order ON refunds (order_id, id);

-- Stripe events already applied (Stripe delivers at least once).
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    order_id TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL
);

-- The test provider keeps how much of a captured payment it refunded.
ALTER TABLE test_payments ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0;
