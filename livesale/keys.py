"""Every Redis key livesale uses, built in one place.

Lua scripts never build keys: they receive them all in ``KEYS``. One SKU's keys share the hash
tag ``{sku}`` and one show's keys the tag ``{show:<id>}`` so Redis Cluster stays possible.
"""

from __future__ import annotations

PREFIX = "ls:"

#: Set when stock has been built from SQLite; its absence after a Redis restart means the
#: data was lost and stock must be rebuilt before anything is sold.
STOCK_READY = PREFIX + "stock-ready"
#: Held while one process rebuilds stock from SQLite.
REBUILD_LOCK = PREFIX + "rebuild-lock"


def stock(sku: str) -> str:
    """Hash ``on_hand``, ``available``, ``held``, ``sold`` of one SKU."""
    return f"{PREFIX}{{{sku}}}:stock"


def stock_ledger(sku: str) -> str:
    """Stream of every change to one SKU's counters (who, when, delta, reason)."""
    return f"{PREFIX}{{{sku}}}:ledger"


def show(show_id: str) -> str:
    """Hash ``state``, ``paused`` of a show, mirrored from SQLite for the scripts."""
    return f"{PREFIX}{{show:{show_id}}}:state"


def lineup(show_id: str) -> str:
    """Hash SKU -> ``price|currency|limit`` of the show's line-up, mirrored from SQLite."""
    return f"{PREFIX}{{show:{show_id}}}:lineup"


def show_channel(show_id: str) -> str:
    """Pub/sub channel of a show's room events."""
    return f"{PREFIX}{{show:{show_id}}}:events"


def show_seq(show_id: str) -> str:
    """Counter giving every room event of a show its sequence number."""
    return f"{PREFIX}{{show:{show_id}}}:seq"
