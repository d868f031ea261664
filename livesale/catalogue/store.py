"""Catalogue and stock ledger (SQLite) and stock counters (Redis).

SQLite is the system of record for products and on-hand counts: every change of on-hand is a
row in ``stock_ledger``. Redis holds the live counters the buy path needs; they can always be
rebuilt from SQLite (``livesale.orders.recovery``). :class:`StockStore` says how a change of
on-hand keeps the two in step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis

from livesale import keys
from livesale.catalogue import state
from livesale.catalogue.messages import LedgerEntry, Product, ProductIn
from livesale.db import Connection, Database, Row
from livesale.errors import (
    LivesaleError,
    NotFound,
    StockConflict,
    StoreError,
    Unavailable,
    map_redis_errors,
)
from livesale.ids import new_id
from livesale.lua import ScriptCall, Scripts, calls
from livesale.lua.pipeline import ScriptBatcher
from livesale.money import Money
from livesale.values import StockLevel

log = logging.getLogger("livesale.catalogue")

#: How long a stock change may stay between its two steps before it is taken for interrupted.
BATCH_LEASE_MS = 30_000
#: How long a change waits for another process's open change to close.
BUSY_SECONDS = 10.0
#: SKUs a query names at once (well under SQLite's bound on parameters).
_CHUNK = 500


#: On-hand counts of a JSON list of SKUs, per engine (the one statement they spell apart).
_ON_HAND = {
    "sqlite": "SELECT p.sku, p.on_hand FROM json_each(?) AS j JOIN products AS p"
    " ON p.sku = j.value",
    "postgresql": "SELECT p.sku, p.on_hand FROM json_array_elements_text(?::json) AS j(value)"
    " JOIN products AS p ON p.sku = j.value",
}


def _product(row: Row) -> Product:
    return Product(
        sku=row["sku"],
        title=row["title"],
        description=row["description"],
        image_url=row["image_url"],
        price=Money(amount=row["price_amount"], currency=row["currency"]),
    )


async def _on_hand(conn: Connection, skus: Sequence[str]) -> dict[str, int]:
    """The stored on-hand count of each of ``skus``, in their order; :class:`NotFound` for
    an unknown one. One statement however many there are (the SKUs go in as one JSON list,
    which each engine unpacks with its own JSON function)."""
    cur = await conn.execute(_ON_HAND[conn.dialect], (msgspec.json.encode(list(skus)).decode(),))
    found = {r[0]: int(r[1]) for r in await cur.fetchall()}
    missing = [sku for sku in skus if sku not in found]
    if missing:
        raise NotFound(f"no product with SKU {missing[0]!r}")
    return {sku: found[sku] for sku in skus}


async def _record(
    conn: Connection, rows: list[tuple[str, int, int]], actor: str, reason: str
) -> None:
    """The ledger row and the new on-hand of every (SKU, count, count before) of a change."""
    now = time.time()
    try:
        await conn.executemany(
            "INSERT INTO stock_ledger (sku, at, actor, delta, on_hand, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(sku, now, actor, n - b, n, reason) for sku, n, b in rows],
        )
        await conn.executemany(
            "UPDATE products SET on_hand = ?, updated_at = ? WHERE sku = ?",
            [(n, now, sku) for sku, n, _ in rows],
        )
    except StoreError as exc:
        raise StoreError(f"cannot record the stock change: {exc.detail}") from exc


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

    async def upsert(self, conn: Connection, products: Iterable[ProductIn]) -> None:
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
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(f"SELECT * FROM products WHERE sku IN ({marks})", chunk)
            found.update((r["sku"], _product(r)) for r in rows)
        return found


@dataclass(frozen=True)
class Change:
    """One SKU's new on-hand count: ``set_to`` it, else ``delta`` units more (or fewer)."""

    sku: str
    set_to: int | None = None
    delta: int = 0


#: Builds the error for the refused rows of a change: ``(row index, conflict)`` each.
Refuse = Callable[[list[tuple[int, StockConflict]]], LivesaleError]


def _first(refused: list[tuple[int, StockConflict]]) -> LivesaleError:
    return refused[0][1]


@dataclass
class _Batch:
    """One change of on-hand counts between its steps: rows of (SKU, target, count before)."""

    id: str
    rows: list[tuple[str, int, int]] = field(default_factory=list)
    prepared: bool = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StockStore:
    """The live counters of every SKU, changed only by Lua scripts.

    On-hand counts change in both stores as one change (:meth:`apply`), in two steps around
    the SQLite commit, so that a refused or failed change leaves both as they were, a
    concurrent buy click cannot slip between the check and the write, and no crash lets Redis
    offer a unit SQLite does not have:

    1. Inside the SQLite transaction, one ``stock_batch`` call (``prepare``) checks every row
       against the live held and sold counts and refuses the whole change if one row is below
       them. Otherwise it applies only the rows whose on-hand *falls* — taking units off sale,
       which can always be undone — and opens the change under a lease.
    2. After the commit, one ``finish`` call sets every row to what SQLite now says and closes
       the change: the new counts, which only add units and so are never refused; after a
       rollback, the old ones, which gives back the units taken off sale.

    Between the steps Redis never counts more than SQLite for any SKU, so a process that dies
    there leaves stock short, never oversold; its change outlives its lease, later changes are
    refused as ``interrupted``, and the orders' stock watch rebuilds stock from SQLite. One
    change is open at a time, for every process sharing the Redis: the next waits until it
    closes (``busy``), so changes reach Redis in the order SQLite committed them.
    """

    def __init__(self, db: Database, redis: aioredis.Redis, scripts: Scripts) -> None:
        #: Told the SKUs of every change once both stores have it (the shows tell their rooms).
        self.listeners: list[Callable[[list[str]], Awaitable[None]]] = []
        self.db = db
        self.redis = redis
        self.scripts = scripts
        self.batcher = ScriptBatcher(redis, scripts)

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
        """Set (``set_to``) or adjust (``delta``) one SKU's on-hand (see :meth:`apply`); its
        counters right after."""
        await self.apply([Change(sku, set_to, delta)], actor=actor, reason=reason)
        level = await self.get(sku)
        state.check(level)
        return level

    async def apply(
        self,
        changes: Sequence[Change],
        *,
        actor: str,
        reason: str,
        write: Callable[[Connection], Awaitable[None]] | None = None,
        refuse: Refuse = _first,
    ) -> None:
        """Change the on-hand counts of ``changes`` (distinct SKUs) in SQLite, its ledger and
        Redis as one change; ``write`` adds the caller's own rows to the same transaction.

        Raises :class:`NotFound` for an unknown SKU, ``refuse(rows)`` when on-hand would fall
        below what is held or sold (by default the first row's :class:`StockConflict`), and
        :class:`Unavailable` while stock is rebuilt or another process's change stays open;
        nothing changes in either store then.
        """
        skus = [c.sku for c in changes]
        if len(set(skus)) != len(skus):
            raise ValueError("a SKU repeats in one stock change")
        batch = _Batch(new_id("sb"))
        try:
            async with self.db.transaction() as conn:
                if write is not None:
                    await write(conn)
                if not changes:
                    return
                before = await _on_hand(conn, skus)
                batch.rows = [
                    (
                        c.sku,
                        before[c.sku] + c.delta if c.set_to is None else c.set_to,
                        before[c.sku],
                    )
                    for c in changes
                ]
                await self._prepare(batch, refuse)
                await _record(conn, batch.rows, actor, reason)
        except asyncio.CancelledError:
            # Committed or not, nobody can tell: the change stays open, counting no more in
            # Redis than SQLite has, until the stock watch reconciles it after its lease.
            raise
        except Exception:
            if batch.prepared:  # rolled back: every row back to its count before the change
                try:
                    await self._finish(batch.id, [(sku, b, b) for sku, _, b in batch.rows])
                except Exception:
                    log.exception(
                        "stock change %s not undone in Redis: left to the watch", batch.id
                    )
            raise
        await self._finish(batch.id, batch.rows)
        for listener in self.listeners:
            try:
                await listener(skus)
            except Exception:
                log.exception("telling of a stock change of %d SKU(s) failed", len(skus))

    async def _prepare(self, batch: _Batch, refuse: Refuse) -> None:
        """Step 1: open the change, check every row in its SKU's slot and take units off sale,
        or give back what was taken, close it and raise."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            status = _text(await self.scripts.run(self._lock("open", batch.id)))
            if status != "busy" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)  # another process's change is between its two steps
        if status == "ok":
            batch.prepared = True
            results = await self._rows("prepare", batch.rows)
            refused = []
            for at, result in enumerate(results):
                if _text(result[0]) == "conflict":
                    on_hand, held, sold = (int(v) for v in result[1:4])
                    sku, target, _ = batch.rows[at]
                    level = StockLevel(sku, on_hand, on_hand - held - sold, held, sold)
                    refused.append((at, state.conflict(level, target)))
            unready = any(_text(r[0]) == "unready" for r in results)
            if not refused and not unready:
                return
            await self._finish(batch.id, [(sku, b, b) for sku, _, b in batch.rows])
            batch.prepared = False
            if refused:
                raise refuse(refused)
            status = "unready"
        raise Unavailable(
            {
                "unready": "stock is being rebuilt from the database; try again shortly",
                "busy": "another stock change is in progress; try again shortly",
                "interrupted": "an interrupted stock change is being reconciled with the"
                " database; try again shortly",
            }[status],
            retry_after=1,
        )

    def _lock(self, step: str, change: str) -> ScriptCall:
        return calls.stock_lock(step=step, change=change, lease_ms=BATCH_LEASE_MS)

    async def _rows(self, step: str, rows: Sequence[tuple[str, int, int]]) -> list[Any]:
        """One step of every row ``(sku, target, before)``, each in its SKU's slot, pipelined."""
        return list(
            await asyncio.gather(
                *(
                    self.batcher.call(
                        calls.stock_set(step=step, sku=sku, target=target, before=before)
                    )
                    for sku, target, before in rows
                )
            )
        )

    async def _finish(self, change: str, rows: list[tuple[str, int, int]]) -> None:
        """Step 2: every row ``(sku, target, before)`` to what SQLite holds now, and the change
        closed."""
        for (sku, target, _), result in zip(rows, await self._rows("finish", rows), strict=True):
            if _text(result[0]) == "unready":
                continue  # Redis lost the SKU's counters: the rebuild sets them
            if shortfall := int(result[1]):
                log.error(
                    "stock of %s: on-hand %d is %d below what is held and sold",
                    sku,
                    target,
                    shortfall,
                )
        await self.scripts.run(self._lock("close", change))

    async def interrupted(self) -> str | None:
        """The id of an open stock change that outlived its lease (the process making it
        died between its two steps), else ``None``; stock must then be rebuilt from SQLite."""
        with map_redis_errors():
            batch, until = await self.redis.hmget(keys.STOCK_BATCH, ["id", "until"])
            # (A cluster pipeline refuses TIME: it is asked on its own.)
            seconds, micros = await self.redis.time()
        if batch is None or until is None or int(until) > seconds * 1000 + micros // 1000:
            return None
        return _text(batch)

    async def forget_interrupted(self) -> None:
        """After a rebuild from SQLite: close an interrupted change (nothing reopens it)."""
        if await self.interrupted() is not None:
            with map_redis_errors():
                await self.redis.delete(keys.STOCK_BATCH)

    async def ledger(self, sku: str, limit: int = 100) -> list[LedgerEntry]:
        rows = await self.db.fetchall(
            "SELECT at, actor, delta, on_hand, reason FROM stock_ledger WHERE sku = ?"
            " ORDER BY id DESC LIMIT ?",
            (sku, limit),
        )
        return [
            LedgerEntry(r["at"], r["actor"], r["delta"], r["on_hand"], r["reason"]) for r in rows
        ]
