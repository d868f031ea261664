"""Making Redis agree with SQLite: at start-up, after Redis lost its data, and on demand.

Redis holds the live stock counters and the show mirror; SQLite is the record. When the
readiness marker :data:`livesale.keys.STOCK_READY` is missing (first start, or Redis came back
empty), stock is rebuilt from SQLite — on-hand from the catalogue's ledgered count, sold from
orders — and only then is anything sold. Stock is never re-seeded from a catalogue default.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from livesale import keys
from livesale.catalogue import CATALOGUE
from livesale.errors import map_redis_errors
from livesale.lua import calls
from livesale.orders import state
from livesale.services import Services
from livesale.shows import SHOWS
from livesale.values import StockLevel

log = logging.getLogger("livesale.orders")

_LOCK_SECONDS = 60


class StockDifference(msgspec.Struct, frozen=True):
    """What Redis said before a rebuild, and what SQLite says it should be."""

    sku: str
    redis: StockLevel
    rebuilt: StockLevel


async def sold_counts(services: Services) -> dict[str, int]:
    """Units sold per SKU according to SQLite: confirmed orders, less units given back."""
    rows = await services.db.fetchall(
        f"SELECT sku, SUM({state.SOLD_UNITS_SQL}) AS units FROM orders GROUP BY sku"
    )
    return {r["sku"]: int(r["units"]) for r in rows if int(r["units"])}


class _SkuOrders:
    """What SQLite says about one SKU's orders: sold units, in-flight holds, buyers' units."""

    def __init__(self) -> None:
        self.sold = 0
        self.authorized_holds: list[str] = []
        self.bought: dict[str, int] = {}


async def _orders_by_sku(services: Services) -> dict[str, _SkuOrders]:
    # One statement, so one consistent snapshot of every order that counts.
    rows = await services.db.fetchall(
        f"SELECT sku, show_id, viewer_id, hold_id, state, {state.SOLD_UNITS_SQL} AS units,"
        " (SELECT state FROM shows WHERE shows.id = orders.show_id) AS show_state"
        " FROM orders WHERE state IN ('confirmed', 'authorized') OR returned_qty > 0"
    )
    found: dict[str, _SkuOrders] = {}
    for r in rows:
        entry = found.setdefault(r["sku"], _SkuOrders())
        if r["state"] == "authorized":
            entry.authorized_holds.append(r["hold_id"])
        elif int(r["units"]):
            # Units given back but not yet back on sale still count as sold; the return
            # (Returns.restock) moves them, once, after the rebuild.
            entry.sold += int(r["units"])
            if r["show_state"] != "ended":  # an ended show has no buyer limits to keep
                buyer = state.buyer_field(r["show_id"], r["viewer_id"])
                entry.bought[buyer] = entry.bought.get(buyer, 0) + int(r["units"])
    return found


async def rebuild(services: Services) -> list[StockDifference]:
    """Rewrite every SKU's counters and every open show's mirror from SQLite.

    On-hand comes from the catalogue's ledgered count, sold from confirmed orders less the
    units they gave back (plus
    authorized orders whose hold Redis already confirmed), held from the holds Redis still has
    (none after Redis lost its data: those holds are dropped). The readiness marker is removed
    first, so nothing is reserved, confirmed or restocked while this runs, and set again at the
    end. Returns the SKUs whose counters differed; an on-hand below what is held and sold is
    reported (logged as an error) and leaves ``available`` at 0.
    """
    redis = services.redis
    catalogue = services.get(CATALOGUE)
    differences: list[StockDifference] = []
    with map_redis_errors():
        await redis.delete(keys.STOCK_READY)
        # Read with SQLite's writer held, so that no stock change is between its first Redis
        # step and its commit while the record is read: one that committed finishes with what
        # is read here, and none starts until stock is ready (catalogue.store.StockStore).
        async with services.db.transaction():
            rows = await services.db.fetchall("SELECT sku, on_hand FROM products ORDER BY sku")
            # Each SKU's own mark goes too, before the orders are read: no hold of any SKU is
            # confirmed meanwhile (the scripts check the mark in the SKU's slot).
            async with redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.hdel(keys.stock(row["sku"]), "ready")
                await pipe.execute()
            orders = await _orders_by_sku(services)
        # The shows' mirrors (each item's offer in its SKU's slot) before any SKU is ready
        # again: a click on a SKU made ready before its offer was back was refused as "not
        # live" though the show was live.
        await services.get(SHOWS).mirror_all()
        before = await catalogue.stock_levels([r["sku"] for r in rows])
        for row in rows:
            sku, on_hand = row["sku"], int(row["on_hand"])
            entry = orders.get(sku, _SkuOrders())
            result = await services.scripts.run(
                calls.stock_rebuild(
                    sku=sku,
                    on_hand=on_hand,
                    sold=entry.sold,
                    authorized_holds=entry.authorized_holds,
                    bought=entry.bought,
                )
            )
            level = StockLevel(sku, *(int(v) for v in result[:4]))
            if int(result[4]):
                log.error(
                    "stock of %s: on-hand %d is %d below what is held and sold",
                    sku,
                    on_hand,
                    int(result[4]),
                )
            if level != before[sku]:
                differences.append(StockDifference(sku, before[sku], level))
        await catalogue.forget_interrupted_change()
        await redis.set(keys.STOCK_READY, "1")
    for diff in differences:
        log.warning("stock of %s rebuilt: redis had %s, now %s", diff.sku, diff.redis, diff.rebuilt)
    return differences


async def reconcile(services: Services) -> list[StockDifference]:
    """``livesale stock reconcile``: the same rebuild on demand, under the rebuild lock."""
    redis = services.redis
    while not await redis.set(keys.REBUILD_LOCK, "1", nx=True, ex=_LOCK_SECONDS):
        await asyncio.sleep(0.1)
    try:
        return await rebuild(services)
    finally:
        await redis.delete(keys.REBUILD_LOCK)


async def ensure_stock(services: Services) -> bool:
    """Rebuild stock if Redis has not got it; True if this call rebuilt it.

    With several processes only one rebuilds (a Redis lock); the others wait for the marker.
    """
    redis = services.redis
    while not await redis.exists(keys.STOCK_READY):
        if await redis.set(keys.REBUILD_LOCK, "1", nx=True, ex=_LOCK_SECONDS):
            try:
                if await redis.exists(keys.STOCK_READY):
                    return False  # another process finished a rebuild a moment ago
                await rebuild(services)
            finally:
                await redis.delete(keys.REBUILD_LOCK)
            return True
        await asyncio.sleep(0.1)
    return False
