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

A show whose replay sells (``replay_sales``, the default) keeps taking holds after its end,
with the same limits and caps: its grace period then releases nothing and waits for nothing,
and the first batch packs the orders confirmed by then. Every later order waits for the next
batch, cut ``--replay-batch-hours`` after the last one (or at once with ``POST
/api/shows/{id}/batches``). Each batch captures its own orders' money first, is announced by
its own ``show.fulfilment_ready`` webhook, and packs one parcel per buyer; a buyer of several
batches gets a parcel from each. When the replay stops selling (the merchant turns it off, or
the recording's keep time is over) its holds are released as a live show's are at the end.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from livesale import events, keys
from livesale.db import Connection, Database, Row
from livesale.errors import InvalidTransition, NotFound, ValidationFailed, map_redis_errors
from livesale.money import Total
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


def parcel_id(show_id: str, viewer_id: str, batch: int = 1) -> str:
    """The id of a buyer's parcel of a show's batch: the same in every read of the batch
    (the first batch's ids are those of the releases before replay batches)."""
    name = f"{show_id}|{viewer_id}" if batch == 1 else f"{show_id}|{viewer_id}|{batch}"
    return "pc_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def shipment_of(row: Row | None) -> Shipment | None:
    if row is None:
        return None
    return Shipment(row["carrier"], row["tracking_number"], row["shipped_at"])


async def show_ended(db: Database, show_id: str, grace_seconds: int) -> None:
    """Start the show's closing (once): the grace period runs from now."""
    now = time.time()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO show_closings (show_id, ended_at, due_at, state)"
            " VALUES (?, ?, ?, 'grace') ON CONFLICT DO NOTHING",
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
        replay_days: int = 30,
        batch_seconds: float = 86400,
    ) -> None:
        #: How long a closed show's Redis keys live on.
        self.keep_ms = keep_seconds * 1000
        #: How long the keys a replay sells from live on after the end (0: while it sells).
        self.replay_ms = replay_days * 86_400_000
        #: How long orders taken on a replay wait for their batch.
        self.batch_seconds = batch_seconds
        self.db = db
        self.redis = redis
        self.holds = holds
        self.sales = sales
        self.providers = providers
        self.book = book

    async def finish_due(self) -> list[str]:
        """Finish every closing whose grace period is over, and cut the replay batches that
        are due; returns the show ids of the closings finished."""
        now = time.time()
        rows = await self.db.fetchall(
            "SELECT show_id FROM show_closings WHERE state = 'grace' AND due_at <= ?", (now,)
        )
        finished = []
        for row in rows:
            if await self.finish(row["show_id"]):
                finished.append(row["show_id"])
        due = await self.db.fetchall(
            "SELECT c.show_id FROM show_closings c WHERE c.state = 'ready'"
            " AND EXISTS (SELECT 1 FROM orders o WHERE o.show_id = c.show_id"
            "   AND o.state = 'confirmed' AND o.batch IS NULL)"
            " AND (SELECT MAX(b.ready_at) FROM show_batches b WHERE b.show_id = c.show_id) <= ?",
            (now - self.batch_seconds,),
        )
        for row in due:
            await self.cut(row["show_id"])
        return finished

    async def _skus(self, show_id: str) -> list[str]:
        return [
            r["sku"]
            for r in await self.db.fetchall(
                "SELECT sku FROM lineup_items WHERE show_id = ?"
                " UNION SELECT DISTINCT sku FROM orders WHERE show_id = ?",
                (show_id, show_id),
            )
        ]

    async def _release(self, show_id: str, skus: list[str]) -> None:
        """Release the show's held holds, forget its buyers' counts, and settle its orders
        in flight by their providers' accounts."""
        for sku in skus:
            available, released = await self.holds.release_show(show_id, sku)
            await announce_ended(self.redis, released, available)
        await self.sales.recover(show_id=show_id)

    async def finish(self, show_id: str) -> bool:
        """Release, settle, capture and batch one show; False if orders are still settling.
        A show whose replay sells keeps its holds and its buyers' counts, and packs what is
        confirmed now: its later orders go to later batches."""
        skus = await self._skus(show_id)
        row = await self.db.fetchone("SELECT replay_sales FROM shows WHERE id = ?", (show_id,))
        replay = bool(row and row["replay_sales"])
        if not replay:
            await self._release(show_id, skus)
            left = await self.db.fetchone(
                "SELECT COUNT(*) FROM orders WHERE show_id = ?"
                " AND state IN ('pending', 'authorized')",
                (show_id,),
            )
            if left is not None and left[0]:
                return False  # stock is being rebuilt; try again on the next tick
        await self._capture_waiting(show_id)
        await self._forget_room(show_id, skus, replay=replay)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE show_closings SET state = 'ready', ready_at = ?"
                " WHERE show_id = ? AND state = 'grace'",
                (time.time(), show_id),
            )
            if cur.rowcount:
                await self._pack(conn, show_id, 1)
        log.info("show %s closed: fulfilment batch ready", show_id)
        return True

    async def replay_ended(self, show_id: str) -> None:
        """The show's replay stopped selling: release its holds and forget its buyers'
        counts as at a live show's close, and give its room keys their lifetime. The orders
        confirmed since the last batch still get theirs."""
        skus = await self._skus(show_id)
        await self._release(show_id, skus)
        await self._forget_room(show_id, skus, replay=False)

    async def cut(self, show_id: str) -> Fulfilment:
        """Pack the orders confirmed since the show's last batch into a new batch (capturing
        their money first); :class:`InvalidTransition` before the first batch or when no
        order waits."""
        closing = await self.db.fetchone(
            "SELECT state FROM show_closings WHERE show_id = ?", (show_id,)
        )
        if closing is None or closing["state"] != "ready":
            await self._show_exists(show_id)
            state = closing["state"] if closing else "open"
            raise InvalidTransition(
                f"show {show_id} has no first batch yet (it is {state})", state=state
            )
        await self._capture_waiting(show_id)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT COALESCE(MAX(batch), 0) + 1 FROM show_batches WHERE show_id = ?",
                (show_id,),
            )
            found = await cur.fetchone()
            number = int(found[0]) if found else 1
            if not await self._pack(conn, show_id, number):
                raise InvalidTransition(
                    f"no order of show {show_id} waits for a batch", state="ready"
                )
        log.info("show %s: replay batch %d ready", show_id, number)
        return await self.fulfilment(show_id, number)

    async def _capture_waiting(self, show_id: str) -> None:
        """Capture every confirmed order of the show not yet packed whose money is only
        authorized."""
        confirmed = await self.db.fetchall(
            "SELECT * FROM orders WHERE show_id = ? AND state = 'confirmed'"
            " AND payment_status = 'authorized' AND batch IS NULL",
            (show_id,),
        )
        for row in confirmed:
            await self._capture(row)

    async def _pack(self, conn: Connection, show_id: str, number: int) -> int:
        """Inside a transaction: file the show's confirmed orders that wait, their money
        settled, as batch ``number`` and announce it; returns how many orders it packed (an
        order confirmed after its capture round waits for the next batch)."""
        cur = await conn.execute(
            "UPDATE orders SET batch = ? WHERE show_id = ? AND state = 'confirmed'"
            " AND batch IS NULL AND payment_status != 'authorized'",
            (number, show_id),
        )
        packed = cur.rowcount
        if not packed and number > 1:
            return 0
        now = time.time()
        await conn.execute(
            "INSERT INTO show_batches (show_id, batch, ready_at, orders) VALUES (?, ?, ?, ?)",
            (show_id, number, now, packed),
        )
        batch = await self._batch(show_id, number, conn)
        summary = {
            "show_id": show_id,
            "batch": number,
            "orders": batch.orders,
            "units": batch.units,
            "parcels": len(batch.parcels),
            "unpaid": batch.unpaid,
            "ready_at": now,
            "fulfilment_url": f"/api/shows/{show_id}/fulfilment?batch={number}",
        }
        test = await conn.execute(
            "SELECT 1 FROM orders WHERE show_id = ? AND batch = ? AND test = 1 LIMIT 1",
            (show_id, number),
        )
        await webhooks.enqueue(
            conn, "show.fulfilment_ready", summary, test=await test.fetchone() is not None
        )
        return packed

    async def _forget_room(self, show_id: str, skus: list[str], *, replay: bool) -> None:
        """Give the show's Redis keys their lifetime: the room takes nothing more, and what
        is left (the chat tail for late visitors, the mirror) goes a while after the close.
        While the replay sells, what its buy clicks read lives as long as the replay does."""
        keep_for_replay = set(keys.replay_keys(show_id)) if replay else set()
        with map_redis_errors():
            requested = await self.redis.hkeys(keys.show_requests(show_id))
            async with self.redis.pipeline(transaction=False) as pipe:
                asked = (s.decode() if isinstance(s, bytes) else s for s in requested)
                for key in keys.show_keys(show_id, {*skus, *asked}):
                    if key not in keep_for_replay:
                        pipe.pexpire(key, self.keep_ms)
                    elif self.replay_ms:
                        pipe.pexpire(key, self.replay_ms)
                await pipe.execute()

    async def _capture(self, row: Row) -> None:
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

    async def _show_exists(self, show_id: str) -> None:
        if await self.db.fetchone("SELECT 1 FROM shows WHERE id = ?", (show_id,)) is None:
            raise NotFound(f"no show {show_id!r}")

    async def fulfilment(self, show_id: str, batch: int | None = None) -> Fulfilment:
        """The show's parcels per buyer and batch once the first batch is made (state
        ``grace`` before that), every batch's or batch ``batch``'s alone."""
        row = await self.db.fetchone(
            "SELECT state, ready_at FROM show_closings WHERE show_id = ?", (show_id,)
        )
        if row is None:
            await self._show_exists(show_id)
            return Fulfilment(show_id, "open", None, [], 0, 0)
        if row["state"] != "ready":
            return Fulfilment(show_id, row["state"], None, [], 0, 0)
        made = await self.db.fetchall(
            "SELECT batch, ready_at FROM show_batches WHERE show_id = ? ORDER BY batch",
            (show_id,),
        )
        ready_at = {r["batch"]: r["ready_at"] for r in made}
        if batch is not None and batch not in ready_at:
            raise NotFound(f"show {show_id} has no batch {batch}")
        waiting = await self.db.fetchone(
            "SELECT COUNT(*) FROM orders WHERE show_id = ? AND state = 'confirmed'"
            " AND batch IS NULL",
            (show_id,),
        )
        packed = await self._batch(show_id, batch)
        return msgspec.structs.replace(
            packed,
            ready_at=ready_at[batch] if batch is not None else row["ready_at"],
            batch=batch,
            batches=len(made),
            waiting=int(waiting[0]) if waiting else 0,
        )

    async def _batch(
        self, show_id: str, batch: int | None, conn: Connection | None = None
    ) -> Fulfilment:
        """Every packed batch of the show (or batch ``batch``), read on ``conn`` inside a
        transaction."""

        async def rows_of(sql: str, params: tuple[object, ...]) -> list[Row]:
            if conn is None:
                return await self.db.fetchall(sql, params)
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall())

        which = " AND o.batch = ?" if batch is not None else " AND o.batch IS NOT NULL"
        params = (show_id, batch) if batch is not None else (show_id,)
        every = await rows_of(
            "SELECT o.*, p.title FROM orders o JOIN products p ON p.sku = o.sku"
            " WHERE o.show_id = ? AND o.state = 'confirmed' AND o.qty > o.returned_qty"
            f"{which} ORDER BY o.batch, o.created_at, o.id",
            params,
        )
        unpaid = [r["id"] for r in every if r["payment_status"] == "capture_failed"]
        rows = [r for r in every if r["payment_status"] != "capture_failed"]
        by_buyer: dict[tuple[int, str], list[ParcelLine]] = defaultdict(list)
        latest: dict[str, Shipping] = {}
        nicknames: dict[str, str] = {}
        for r in rows:
            by_buyer[r["batch"], r["viewer_id"]].append(
                ParcelLine(
                    order_id=r["id"],
                    sku=r["sku"],
                    title=r["title"],
                    qty=r["qty"] - r["returned_qty"],
                    total=Total(amount=r["amount"] - r["refunded_amount"], currency=r["currency"]),
                )
            )
            # The buyer's most recent shipping details win (they may have corrected them).
            latest[r["viewer_id"]] = Shipping(r["ship_name"], r["ship_address"], r["ship_email"])
            nicknames[r["viewer_id"]] = r["nickname"]
        shipped = {
            (r["batch"], r["viewer_id"]): r
            for r in await rows_of("SELECT * FROM parcels WHERE show_id = ?", (show_id,))
        }
        parcels = []
        for (number, viewer_id), lines in by_buyer.items():
            totals: dict[str, int] = defaultdict(int)
            for line in lines:
                totals[line.total.currency] += line.total.amount
            parcels.append(
                Parcel(
                    id=parcel_id(show_id, viewer_id, number),
                    viewer_id=viewer_id,
                    nickname=nicknames[viewer_id],
                    shipping=latest[viewer_id],
                    lines=lines,
                    units=sum(line.qty for line in lines),
                    totals=[Total(amount=a, currency=c) for c, a in sorted(totals.items())],
                    shipment=shipment_of(shipped.get((number, viewer_id))),
                    batch=number,
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
                    "INSERT INTO parcels (id, show_id, viewer_id, batch, carrier,"
                    " tracking_number, shipped_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET carrier = excluded.carrier,"
                    " tracking_number = excluded.tracking_number, shipped_at = excluded.shipped_at",
                    (
                        parcel.id,
                        show_id,
                        parcel.viewer_id,
                        parcel.batch,
                        item.carrier,
                        item.tracking_number,
                        now,
                    ),
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
            "SELECT o.*, p.title, s.title AS show_title, pc.carrier,"
            " pc.tracking_number, pc.shipped_at FROM orders o"
            " JOIN products p ON p.sku = o.sku JOIN shows s ON s.id = o.show_id"
            " LEFT JOIN parcels pc ON pc.show_id = o.show_id AND pc.viewer_id = o.viewer_id"
            " AND pc.batch = o.batch"
            " WHERE o.viewer_id = ? ORDER BY o.created_at DESC, o.id LIMIT ?",
            (viewer_id, limit),
        )
        mine = []
        for r in rows:
            packed = r["state"] == "confirmed" and r["batch"] is not None
            packed = packed and r["qty"] > r["returned_qty"]
            mine.append(
                MyOrder(
                    id=r["id"],
                    show_id=r["show_id"],
                    show_title=r["show_title"],
                    sku=r["sku"],
                    title=r["title"],
                    qty=r["qty"],
                    total=Total(amount=r["amount"], currency=r["currency"]),
                    state=r["state"],
                    payment_status=r["payment_status"],
                    returned_qty=r["returned_qty"],
                    refunded=Total(amount=r["refunded_amount"], currency=r["currency"]),
                    created_at=r["created_at"],
                    test=bool(r["test"]),
                    parcel_id=parcel_id(r["show_id"], viewer_id, r["batch"]) if packed else None,
                    shipment=shipment_of(r) if packed and r["carrier"] is not None else None,
                )
            )
        return mine
