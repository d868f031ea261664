-- The foundation: settings, merchant API keys, catalogue, stock ledger, shows, line-ups.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    image_url TEXT NOT NULL DEFAULT '',
    price_amount INTEGER NOT NULL CHECK (price_amount >= 0),
    currency TEXT NOT NULL,
    on_hand INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- Every change to a SKU's on-hand count: who, when, by how much, why, and the result.
CREATE TABLE stock_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL REFERENCES products(sku),
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    delta INTEGER NOT NULL,
    on_hand INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX stock_ledger_sku ON stock_ledger (sku, id);

CREATE TABLE shows (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    host_name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended')),
    host_token_hash TEXT NOT NULL,
    scheduled_at TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    demo INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX shows_state ON shows (state, created_at);

CREATE TABLE lineup_items (
    show_id TEXT NOT NULL REFERENCES shows(id),
    position INTEGER NOT NULL,
    sku TEXT NOT NULL REFERENCES products(sku),
    price_amount INTEGER CHECK (price_amount >= 0),
    limit_per_buyer INTEGER CHECK (limit_per_buyer >= 1),
    PRIMARY KEY (show_id, sku)
);
CREATE INDEX lineup_items_position ON lineup_items (show_id, position);
