-- Selling on the replay. A show may keep selling after its end (`replay_sales`, on unless the
-- merchant turns it off); the orders taken after the first fulfilment batch ship in later
-- batches of the same show, so an order records the batch it was packed in and a parcel is one
-- buyer's lines of one batch.

ALTER TABLE shows ADD COLUMN replay_sales INTEGER NOT NULL DEFAULT 1 CHECK (replay_sales IN (0, 1));
-- A show that ended before this release closed the old way: its buyers' counts are gone, so it
-- does not reopen.
UPDATE shows SET replay_sales = 0 WHERE state = 'ended';

-- The batch an order was packed in (1 is the one made when the grace period ended); NULL while
-- it waits for the next.
ALTER TABLE orders ADD COLUMN batch INTEGER;
UPDATE orders SET batch = 1
    WHERE state = 'confirmed' AND show_id IN (SELECT show_id FROM show_closings WHERE state = 'ready');
CREATE INDEX orders_unbatched ON orders (show_id) WHERE batch IS NULL AND state = 'confirmed';

CREATE TABLE show_batches (
    show_id TEXT NOT NULL REFERENCES shows(id),
    batch INTEGER NOT NULL CHECK (batch >= 1),
    ready_at REAL NOT NULL,
    orders INTEGER NOT NULL,
    PRIMARY KEY (show_id, batch)
);
INSERT INTO show_batches (show_id, batch, ready_at, orders)
    SELECT c.show_id, 1, c.ready_at,
        (SELECT COUNT(*) FROM orders o WHERE o.show_id = c.show_id AND o.batch = 1)
    FROM show_closings c WHERE c.state = 'ready';

-- A parcel is now one buyer's lines of one batch of a show.
CREATE TABLE parcels_by_batch (
    id TEXT PRIMARY KEY,
    show_id TEXT NOT NULL REFERENCES shows(id),
    viewer_id TEXT NOT NULL,
    batch INTEGER NOT NULL DEFAULT 1,
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    shipped_at REAL NOT NULL,
    UNIQUE (show_id, viewer_id, batch)
);
INSERT INTO parcels_by_batch (id, show_id, viewer_id, batch, carrier, tracking_number, shipped_at)
    SELECT id, show_id, viewer_id, 1, carrier, tracking_number, shipped_at FROM parcels;
DROP TABLE parcels;
ALTER TABLE parcels_by_batch RENAME TO parcels;
