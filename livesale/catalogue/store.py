"""Catalogue (SQLite) and stock counters (Redis), with the stock ledger in both.

SQLite is the system of record for products and on-hand counts: every change of on-hand is a
row in ``stock_ledger``. Redis holds the live counters the buy path needs; they can always be
rebuilt from SQLite (:meth:`StockStore.rebuild`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence

import aiosqlite
import redis.asyncio as aioredis

from livesale import keys
from livesale.catalogue import state
from livesale.catalogue.messages import LedgerEntry, Product, ProductIn
from livesale.db import Database
from livesale.errors import NotFound, StockConflict, Unavailable, map_redis_errors
from livesale.lua import Scripts, calls
from livesale.money import Money
from livesale.values import StockLevel

log = logging.getLogger("livesale.catalogue")


def _product(row: sqlite3.Row) -> Product:
    return Product(
        sku=row["sku"],
        title=row["title"],
        description=row["description"],
        image_url=row["image_url"],
        price=Money(amount=row["price_amount"], currency=row["currency"]),
    )


class ProductStore:
    """Products in SQLite."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, sku: str) -> Product:
        row = await self.db.fetchone("SELECT * FROM products WHERE sku = ?", (sku,))
        if row is None:
            raise NotFound(f"no product with SKU {sku!r}")
        return _product(row)

    async def all(self) -> list[Product]:
        rows = await self.db.fetchall("SELECT * FROM products ORDER BY sku")
        return [_product(r) for r in rows]

    async def upsert(self, conn: aiosqlite.Connection, products: Iterable[ProductIn]) -> None:
        """Create or replace ``products`` inside the caller's write transaction."""
        now = time.time()
        await conn.executemany(
            "INSERT INTO products (sku, title, description, image_url, price_amount, currency,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sku) DO UPDATE SET title = excluded.title,"
            " description = excluded.description, image_url = excluded.image_url,"
            " price_amount = excluded.price_amount, currency = excluded.currency,"
            " updated_at = excluded.updated_at",
            [
                (
                    p.sku,
                    p.title,
                    p.description,
                    p.image_url,
                    p.price.amount,
                    p.price.currency,
                    now,
                    now,
                )
                for p in products
            ],
        )

    async def existing(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products among ``skus`` that exist, by SKU."""
        wanted = list(dict.fromkeys(skus))
        found: dict[str, Product] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(f"SELECT * FROM products WHERE sku IN ({marks})", chunk)
            found.update((r["sku"], _product(r)) for r in rows)
        return found


class StockStore:
    """The live counters of every SKU, changed only by Lua scripts."""

    def __init__(self, db: Database, redis: aioredis.Redis, scripts: Scripts) -> None:
        self.db = db
        self.redis = redis
        self.scripts = scripts

    async def get(self, sku: str) -> StockLevel:
        """Current counters; a product never stocked reads as all zeros."""
        with map_redis_errors():
            values = await self.redis.hmget(
                keys.stock(sku), ["on_hand", "available", "held", "sold"]
            )
        on_hand, available, held, sold = (int(v or 0) for v in values)
        return StockLevel(sku, on_hand, available, held, sold)

    async def get_many(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        with map_redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for sku in skus:
                    pipe.hmget(keys.stock(sku), ["on_hand", "available", "held", "sold"])
                results = await pipe.execute()
        return {
            sku: StockLevel(sku, *(int(v or 0) for v in values))
            for sku, values in zip(skus, results, strict=True)
        }

    async def change(
        self, sku: str, *, actor: str, reason: str, set_to: int | None = None, delta: int = 0
    ) -> StockLevel:
        """Set (``set_to``) or adjust (``delta``) on-hand, in Redis and the SQLite ledger.

        Raises :class:`NotFound` for an unknown SKU and :class:`StockConflict` when on-hand
        would fall below what is held or sold; nothing changes then.
        """
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT on_hand FROM products WHERE sku = ?", (sku,))
            if await cur.fetchone() is None:
                raise NotFound(f"no product with SKU {sku!r}")
            return await self.change_in(
                conn, sku, actor=actor, reason=reason, set_to=set_to, delta=delta
            )

    async def change_in(
        self,
        conn: aiosqlite.Connection,
        sku: str,
        *,
        actor: str,
        reason: str,
        set_to: int | None = None,
        delta: int = 0,
    ) -> StockLevel:
        """:meth:`change` inside the caller's write transaction ``conn``."""
        level = await self._apply(sku, actor=actor, reason=reason, set_to=set_to, delta=delta)
        await self._record(conn, level, actor=actor, reason=reason)
        return level

    async def _apply(
        self, sku: str, *, actor: str, reason: str, set_to: int | None, delta: int
    ) -> StockLevel:
        result = await self.scripts.run(
            calls.stock_set(sku=sku, set_to=set_to, delta=delta, actor=actor, reason=reason)
        )
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        if status == "unready":
            raise Unavailable("stock is being rebuilt from the database; try again shortly")
        level = StockLevel(sku, *(int(v) for v in result[1:]))
        if status == "conflict":
            target = set_to if set_to is not None else level.on_hand + delta
            raise StockConflict(
                f"on_hand {target} would be below the {level.held} held and {level.sold} sold",
                on_hand=level.on_hand,
                held=level.held,
                sold=level.sold,
            )
        state.check(level)
        return level

    async def _record(
        self, conn: aiosqlite.Connection, level: StockLevel, *, actor: str, reason: str
    ) -> None:
        cur = await conn.execute("SELECT on_hand FROM products WHERE sku = ?", (level.sku,))
        row = await cur.fetchone()
        before = int(row[0]) if row else 0
        await conn.execute(
            "INSERT INTO stock_ledger (sku, at, actor, delta, on_hand, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (level.sku, time.time(), actor, level.on_hand - before, level.on_hand, reason),
        )
        await conn.execute(
            "UPDATE products SET on_hand = ?, updated_at = ? WHERE sku = ?",
            (level.on_hand, time.time(), level.sku),
        )

    async def ledger(self, sku: str, limit: int = 100) -> list[LedgerEntry]:
        rows = await self.db.fetchall(
            "SELECT at, actor, delta, on_hand, reason FROM stock_ledger WHERE sku = ?"
            " ORDER BY id DESC LIMIT ?",
            (sku, limit),
        )
        return [
            LedgerEntry(r["at"], r["actor"], r["delta"], r["on_hand"], r["reason"]) for r in rows
        ]
