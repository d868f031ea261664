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
from redis.exceptions import RedisError

from livesale import keys
from livesale.errors import StoreError
from livesale.orders.messages import StockLevel
from livesale.services import Services

log = logging.getLogger("livesale.orders")

_LOCK_SECONDS = 60


class StockDifference(msgspec.Struct, frozen=True):
    """What Redis said before a rebuild, and what SQLite says it should be."""

    sku: str
    redis: StockLevel
    rebuilt: StockLevel


async def sold_counts(services: Services) -> dict[str, int]:
    """Units sold per SKU according to SQLite's orders (none before orders exist)."""
    return {}


async def rebuild(services: Services) -> list[StockDifference]:
    """Rewrite every SKU's counters and every open show's mirror from SQLite.

    Holds that lived only in Redis are dropped (their units return to ``available``). Returns
    the SKUs whose counters differed. Sets the readiness marker when done.
    """
    rows = await services.db.fetchall("SELECT sku, on_hand FROM products ORDER BY sku")
    sold = await sold_counts(services)
    before = await services.stock.get_many([r["sku"] for r in rows])
    differences: list[StockDifference] = []
    try:
        async with services.redis.pipeline(transaction=True) as pipe:
            for row in rows:
                sku, on_hand = row["sku"], int(row["on_hand"])
                units_sold = sold.get(sku, 0)
                level = StockLevel(sku, on_hand, max(on_hand - units_sold, 0), 0, units_sold)
                if level != before[sku]:
                    differences.append(StockDifference(sku, before[sku], level))
                pipe.hset(
                    keys.stock(sku),
                    mapping={
                        "on_hand": level.on_hand,
                        "available": level.available,
                        "held": 0,
                        "sold": level.sold,
                    },
                )
            await pipe.execute()
        await services.shows.mirror_all()
        await services.redis.set(keys.STOCK_READY, "1")
    except RedisError as exc:
        raise StoreError(f"redis: {exc}") from exc
    for diff in differences:
        log.warning("stock of %s rebuilt: redis had %s, now %s", diff.sku, diff.redis, diff.rebuilt)
    return differences


async def ensure_stock(services: Services) -> bool:
    """Rebuild stock if Redis has not got it; True if this call rebuilt it.

    With several processes only one rebuilds (a Redis lock); the others wait for the marker.
    """
    redis = services.redis
    while not await redis.exists(keys.STOCK_READY):
        if await redis.set(keys.REBUILD_LOCK, "1", nx=True, ex=_LOCK_SECONDS):
            try:
                await rebuild(services)
            finally:
                await redis.delete(keys.REBUILD_LOCK)
            return True
        await asyncio.sleep(0.1)
    return False
