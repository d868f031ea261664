"""Show end: "shipped when the stream finishes".

When a show ends it stops taking holds at once (its Redis mirror says ``ended``); holds still
live get a grace period to check out (:func:`show_ended`, which the orders component registers
with the shows as an end hook). When the grace period is over, :meth:`Closing.finish`
releases the rest, drives in-flight orders to a final state, captures every authorized
confirmed order, and makes the fulfilment batch — one parcel per buyer — announced by the
``show.fulfilment_ready`` webhook. The closing is a row in SQLite, so a restart resumes it.

A capture that fails (the provider refuses, or the authorization lapsed: Stripe keeps one for
7 days) is never dropped: the order's payment becomes ``capture_failed``, the error is logged,
the merchant's webhook hears ``order.capture_failed``, and the batch lists the order under
``unpaid`` instead of packing it. The merchant can cancel it (the units come back).
Refunded units are not packed.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from livesale import events, keys
from livesale.db import Database
from livesale.errors import InvalidTransition, NotFound, ValidationFailed, map_redis_errors
from livesale.money import Money
from livesale.orders import webhooks
from livesale.orders.book import OrderBook, payment_of
from livesale.orders.checkout import Sales
from livesale.orders.holds import HoldStore, announce_ended
from livesale.orders.messages import (
    Fulfilment,
    MyOrder,
    Parcel,
    ParcelLine,
    ShipIn,
    Shipment,
    ShipmentsOut,
    Shipping,
)
from livesale.orders.payments import Provider, ProviderError

log = logging.getLogger("livesale.orders")


def parcel_id(show_id: str, viewer_id: str) -> str:
    """The id of a buyer's parcel of a show: the same in every read of the batch."""
    digest = hashlib.sha256(f"{show_id}|{viewer_id}".encode()).hexdigest()
    return "pc_" + digest[:16]


def shipment_of(row: sqlite3.Row | None) -> Shipment | None:
    if row is None:
        return None
    return Shipment(row["carrier"], row["tracking_number"], row["shipped_at"])


async def show_ended(db: Database, show_id: str, grace_seconds: int) -> None:
    """Start the show's closing (once): the grace period runs from now."""
    now = time.time()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT OR IGNORE INTO show_closings (show_id, ended_at, due_at, state)"
            " VALUES (?, ?, ?, 'grace')",
            (show_id, now, now + grace_seconds),
        )


class Closing:
    """Finishes shows whose grace period is over, and serves their fulfilment batches."""

    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        holds: HoldStore,
        sales: Sales,
        providers: dict[str, Provider],
        book: OrderBook,
        *,
        keep_seconds: int = 3600,
    ) -> None:
        #: How long a closed show's Redis keys live on.
        self.keep_ms = keep_seconds * 1000
        self.db = db
        self.redis = redis
        self.holds = holds
        self.sales = sales
        self.providers = providers
        self.book = book

    async def finish_due(self) -> list[str]:
        """Finish every closing whose grace period is over; returns their show ids."""
        rows = await self.db.fetchall(
            "SELECT show_id FROM show_closings WHERE state = 'grace' AND due_at <= ?",
            (time.time(),),
        )
        finished = []
        for row in rows:
            if await self.finish(row["show_id"]):
                finished.append(row["show_id"])
        return finished

    async def finish(self, show_id: str) -> bool:
        """Release, settle, capture and batch one show; False if orders are still settling."""
        skus = [
            r["sku"]
            for r in await self.db.fetchall(
                "SELECT sku FROM lineup_items WHERE show_id = ?"
                " UNION SELECT DISTINCT sku FROM orders WHERE show_id = ?",
                (show_id, show_id),
            )
        ]
        for sku in skus:
            available, released = await self.holds.release_show(show_id, sku)
            await announce_ended(self.redis, released, available)
        await self.sales.recover(show_id=show_id)
        left = await self.db.fetchone(
            "SELECT COUNT(*) FROM orders WHERE show_id = ? AND state IN ('pending', 'authorized')",
            (show_id,),
        )
        if left is not None and left[0]:
            return False  # stock is being rebuilt; try again on the next tick
        confirmed = await self.db.fetchall(
            "SELECT * FROM orders WHERE show_id = ? AND state = 'confirmed'"
            " AND payment_status = 'authorized'",
            (show_id,),
        )
        for row in confirmed:
            await self._capture(row)
        await self._forget_room(show_id, skus)
        now = time.time()
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE show_closings SET state = 'ready', ready_at = ?"
                " WHERE show_id = ? AND state = 'grace'",
                (now, show_id),
            )
            if cur.rowcount:
                batch = await self._batch(show_id)
                summary = {
                    "show_id": show_id,
                    "orders": batch.orders,
                    "units": batch.units,
                    "parcels": len(batch.parcels),
                    "unpaid": batch.unpaid,
                    "ready_at": now,
                    "fulfilment_url": f"/api/shows/{show_id}/fulfilment",
                }
                test = await conn.execute(
                    "SELECT 1 FROM orders WHERE show_id = ? AND test = 1 LIMIT 1", (show_id,)
                )
                await webhooks.enqueue(
                    conn,
                    "show.fulfilment_ready",
                    summary,
                    test=await test.fetchone() is not None,
                )
        log.info("show %s closed: fulfilment batch ready", show_id)
        return True

    async def _forget_room(self, show_id: str, skus: list[str]) -> None:
        """Give the show's Redis keys their lifetime: the room takes nothing more, and what
        is left (the chat tail for late visitors, the mirror) goes a while after the close."""
        with map_redis_errors():
            requested = await self.redis.hkeys(keys.show_requests(show_id))
            async with self.redis.pipeline(transaction=False) as pipe:
                asked = (s.decode() if isinstance(s, bytes) else s for s in requested)
                for key in keys.show_keys(show_id, {*skus, *asked}):
                    pipe.pexpire(key, self.keep_ms)
                await pipe.execute()

    async def _capture(self, row: sqlite3.Row) -> None:
        """Capture one authorized order; a failure is reported, never dropped."""
        order_id = row["id"]
        provider = self.providers.get(row["provider"])
        error = ""
        if provider is None:
            status, error = "capture_failed", f"provider {row['provider']} is not enabled"
        else:
            try:
                status = await provider.capture(payment_of(row))
            except ProviderError as exc:
                status, error = "capture_failed", str(exc)
            if status not in ("captured", "due"):
                error = error or f"the provider reports the payment {status}"
                status = "capture_failed"
            await self.book.log(order_id, provider.name, "capture", error or status)
        if status == "capture_failed":
            log.error("order %s of show %s: capture failed: %s", order_id, row["show_id"], error)
            await self.book.move(
                order_id, None, status, f"capture failed: {error}", event="order.capture_failed"
            )
        else:
            await self.book.move(order_id, None, status)

    async def fulfilment(self, show_id: str) -> Fulfilment:
        """The show's batch: parcels per buyer once ready, state ``grace`` before that."""
        row = await self.db.fetchone(
            "SELECT state, ready_at FROM show_closings WHERE show_id = ?", (show_id,)
        )
        if row is None:
            if await self.db.fetchone("SELECT 1 FROM shows WHERE id = ?", (show_id,)) is None:
                raise NotFound(f"no show {show_id!r}")
            return Fulfilment(show_id, "open", None, [], 0, 0)
        if row["state"] != "ready":
            return Fulfilment(show_id, row["state"], None, [], 0, 0)
        batch = await self._batch(show_id)
        return Fulfilment(
            show_id,
            "ready",
            row["ready_at"],
            batch.parcels,
            batch.orders,
            batch.units,
            batch.unpaid,
        )

    async def _batch(self, show_id: str) -> Fulfilment:
        every = await self.db.fetchall(
            "SELECT o.*, p.title FROM orders o JOIN products p ON p.sku = o.sku"
            " WHERE o.show_id = ? AND o.state = 'confirmed' AND o.qty > o.returned_qty"
            " ORDER BY o.created_at, o.id",
            (show_id,),
        )
        unpaid = [r["id"] for r in every if r["payment_status"] == "capture_failed"]
        rows = [r for r in every if r["payment_status"] != "capture_failed"]
        by_buyer: dict[str, list[ParcelLine]] = defaultdict(list)
        latest: dict[str, Shipping] = {}
        nicknames: dict[str, str] = {}
        for r in rows:
            by_buyer[r["viewer_id"]].append(
                ParcelLine(
                    order_id=r["id"],
                    sku=r["sku"],
                    title=r["title"],
                    qty=r["qty"] - r["returned_qty"],
                    total=Money(amount=r["amount"] - r["refunded_amount"], currency=r["currency"]),
                )
            )
            # The buyer's most recent shipping details win (they may have corrected them).
            latest[r["viewer_id"]] = Shipping(r["ship_name"], r["ship_address"], r["ship_email"])
            nicknames[r["viewer_id"]] = r["nickname"]
        shipped = {
            r["viewer_id"]: r
            for r in await self.db.fetchall("SELECT * FROM parcels WHERE show_id = ?", (show_id,))
        }
        parcels = []
        for viewer_id, lines in by_buyer.items():
            typed = lines
            totals: dict[str, int] = defaultdict(int)
            for line in typed:
                totals[line.total.currency] += line.total.amount
            parcels.append(
                Parcel(
                    id=parcel_id(show_id, viewer_id),
                    viewer_id=viewer_id,
                    nickname=nicknames[viewer_id],
                    shipping=latest[viewer_id],
                    lines=typed,
                    units=sum(line.qty for line in typed),
                    totals=[Money(amount=a, currency=c) for c, a in sorted(totals.items())],
                    shipment=shipment_of(shipped.get(viewer_id)),
                )
            )
        units = sum(int(r["qty"]) - int(r["returned_qty"]) for r in rows)
        return Fulfilment(show_id, "ready", None, parcels, len(rows), units, unpaid)

    async def ship(self, show_id: str, items: Sequence[ShipIn]) -> ShipmentsOut:
        """Mark parcels of the show's batch shipped, all or none: every parcel id must be in
        the batch, once. Each new or corrected shipment is written with its ``parcel.shipped``
        webhook in one transaction, then told to its buyer's room."""
        batch = await self.fulfilment(show_id)
        if batch.state != "ready":
            raise InvalidTransition(
                f"show {show_id} has no fulfilment batch yet (it is {batch.state})",
                state=batch.state,
            )
        parcels = {p.id: p for p in batch.parcels}
        problems: list[str] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            if item.parcel_id not in parcels:
                problems.append(f"item {n}: no parcel {item.parcel_id!r} in this show's batch")
            elif item.parcel_id in seen:
                problems.append(f"item {n}: parcel {item.parcel_id!r} is listed twice")
            seen.add(item.parcel_id)
        if problems:
            raise ValidationFailed("; ".join(problems[:5]), errors=problems)
        now = time.time()
        changed: list[Parcel] = []
        async with self.db.transaction() as conn:
            for item in items:
                parcel = parcels[item.parcel_id]
                before = parcel.shipment
                if before and (before.carrier, before.tracking_number) == (
                    item.carrier,
                    item.tracking_number,
                ):
                    continue
                await conn.execute(
                    "INSERT INTO parcels (id, show_id, viewer_id, carrier, tracking_number,"
                    " shipped_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " carrier = excluded.carrier, tracking_number = excluded.tracking_number,"
                    " shipped_at = excluded.shipped_at",
                    (parcel.id, show_id, parcel.viewer_id, item.carrier, item.tracking_number, now),
                )
                shipment = Shipment(item.carrier, item.tracking_number, now)
                parcel = msgspec.structs.replace(parcel, shipment=shipment)
                changed.append(parcel)
                test = await conn.execute(
                    "SELECT 1 FROM orders WHERE show_id = ? AND viewer_id = ? AND test = 1 LIMIT 1",
                    (show_id, parcel.viewer_id),
                )
                data = {"show_id": show_id, **msgspec.to_builtins(parcel)}
                await webhooks.enqueue(
                    conn, "parcel.shipped", data, test=await test.fetchone() is not None
                )
        for parcel in changed:
            await events.publish(
                self.redis,
                show_id,
                {
                    "type": "parcel",
                    "viewer_id": parcel.viewer_id,
                    "parcel": msgspec.to_builtins(parcel),
                },
            )
        return ShipmentsOut(
            shipped=len(changed), unchanged=len(items) - len(changed), parcels=changed
        )

    async def orders_of(self, viewer_id: str, limit: int = 200) -> list[MyOrder]:
        """A buyer's orders across shows, newest first, each with its parcel once the show's
        batch is made and its shipment once the merchant ships it."""
        rows = await self.db.fetchall(
            "SELECT o.*, p.title, s.title AS show_title, c.state AS closing, pc.carrier,"
            " pc.tracking_number, pc.shipped_at FROM orders o"
            " JOIN products p ON p.sku = o.sku JOIN shows s ON s.id = o.show_id"
            " LEFT JOIN show_closings c ON c.show_id = o.show_id"
            " LEFT JOIN parcels pc ON pc.show_id = o.show_id AND pc.viewer_id = o.viewer_id"
            " WHERE o.viewer_id = ? ORDER BY o.created_at DESC, o.id LIMIT ?",
            (viewer_id, limit),
        )
        mine = []
        for r in rows:
            packed = r["state"] == "confirmed" and r["closing"] == "ready"
            packed = packed and r["qty"] > r["returned_qty"]
            mine.append(
                MyOrder(
                    id=r["id"],
                    show_id=r["show_id"],
                    show_title=r["show_title"],
                    sku=r["sku"],
                    title=r["title"],
                    qty=r["qty"],
                    total=Money(amount=r["amount"], currency=r["currency"]),
                    state=r["state"],
                    payment_status=r["payment_status"],
                    returned_qty=r["returned_qty"],
                    refunded=Money(amount=r["refunded_amount"], currency=r["currency"]),
                    created_at=r["created_at"],
                    test=bool(r["test"]),
                    parcel_id=parcel_id(r["show_id"], viewer_id) if packed else None,
                    shipment=shipment_of(r) if packed and r["carrier"] is not None else None,
                )
            )
        return mine
