-- A parcel is one buyer's confirmed lines of a show, packed and shipped together. Its id comes
-- from the show and the buyer (the same in every batch read); a row is written when the
-- merchant marks it shipped, with the carrier and tracking number the buyer then sees.
CREATE TABLE parcels (
    id TEXT PRIMARY KEY,
    show_id TEXT NOT NULL REFERENCES shows(id),
    viewer_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    shipped_at REAL NOT NULL,
    UNIQUE (show_id, viewer_id)
);
