-- Orders, payments, show closings, fulfilment and webhooks.
CREATE TABLE orders (
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
        ('pending', 'authorized', 'confirmed', 'declined', 'expired', 'cancelled')),
    provider TEXT NOT NULL,
    payment_status TEXT NOT NULL DEFAULT 'none',
    ship_name TEXT NOT NULL,
    ship_address TEXT NOT NULL,
    ship_email TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX orders_show ON orders (show_id, state);
CREATE INDEX orders_state ON orders (state, updated_at);
CREATE INDEX orders_hold ON orders (hold_id);
-- At most one order per hold is in flight or confirmed; a declined one may be retried.
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id)
    WHERE state IN ('pending', 'authorized', 'confirmed');

-- Every call to a payment provider and its answer: the payment log.
CREATE TABLE payment_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX payment_log_order ON payment_log (order_id, id);

-- The built-in test provider's own durable record, keyed by the idempotency key (order id),
-- so a retried authorization after a timeout or a crash never charges twice.
CREATE TABLE test_payments (
    order_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('authorized', 'declined', 'captured', 'voided', 'refunded')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- A show that ended: holds get a grace period until due_at, then the batch is made.
CREATE TABLE show_closings (
    show_id TEXT PRIMARY KEY REFERENCES shows(id),
    ended_at REAL NOT NULL,
    due_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('grace', 'ready')),
    ready_at REAL
);

CREATE TABLE webhook_endpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at REAL NOT NULL
);

-- The delivery log: written in the same transaction as the change it announces (an outbox).
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
