"""The order book: orders as SQLite keeps them, and every change of one, in one place.

Each change is one write transaction that checks the state machine
(:func:`~livesale.orders.state.order_transition`), queues the merchant's webhook in the same
transaction (an outbox) and then tells the buyer's room. Checkout, returns and the show's
closing all change orders through here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from livesale import events
from livesale.db import Connection, Database, Row
from livesale.errors import NotFound
from livesale.money import Money, Total
from livesale.orders import webhooks
from livesale.orders.messages import NextAction, OrderOut, Shipping
from livesale.orders.payments import Payment
from livesale.orders.state import OrderState, order_transition

log = logging.getLogger("livesale.orders")


def order_out(row: Row, next_action: NextAction | None = None) -> OrderOut:
    currency = row["currency"]
    return OrderOut(
        id=row["id"],
        show_id=row["show_id"],
        hold_id=row["hold_id"],
        viewer_id=row["viewer_id"],
        nickname=row["nickname"],
        sku=row["sku"],
        qty=row["qty"],
        price=Money(amount=row["unit_amount"], currency=currency),
        total=Total(amount=row["amount"], currency=currency),
        state=row["state"],
        provider=row["provider"],
        payment_status=row["payment_status"],
        shipping=Shipping(row["ship_name"], row["ship_address"], row["ship_email"]),
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        test=bool(row["test"]),
        payment_ref=row["payment_ref"],
        returned_qty=row["returned_qty"],
        refunded=Total(amount=row["refunded_amount"], currency=currency),
        next_action=next_action,
    )


def payment_of(row: Row) -> Payment:
    """What the order's provider is told about its money."""
    return Payment(row["id"], int(row["amount"]), row["currency"], row["payment_ref"])


async def queue_event(conn: Connection, event: str, order: OrderOut) -> None:
    """Queue a webhook about ``order`` inside the caller's transaction; test money says so."""
    await webhooks.enqueue(conn, event, msgspec.to_builtins(order), test=order.test)


class OrderBook:
    """Reads orders and applies every change to one."""

    def __init__(self, db: Database, redis: aioredis.Redis) -> None:
        self.db = db
        self.redis = redis

    async def row(self, order_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM orders WHERE id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no order {order_id!r}")
        return row

    async def order(self, order_id: str) -> OrderOut:
        return order_out(await self.row(order_id))

    async def orders(self, show_id: str | None = None, state: str | None = None) -> list[OrderOut]:
        sql, params = "SELECT * FROM orders WHERE 1 = 1", []
        if show_id:
            sql += " AND show_id = ?"
            params.append(show_id)
        if state:
            sql += " AND state = ?"
            params.append(state)
        rows = await self.db.fetchall(sql + " ORDER BY created_at, id", params)
        return [order_out(r) for r in rows]

    async def move(
        self,
        order_id: str,
        target: OrderState | None,
        payment_status: str,
        reason: str | None = None,
        *,
        event: str | None = None,
        announce: bool = True,
        **columns: Any,
    ) -> OrderOut:
        """Move the order to ``target`` (``None``: keep its state) with ``payment_status``,
        checked against the state machine; set ``columns`` too, queue ``event`` as a webhook,
        then (unless ``announce`` is false) tell the buyer's room."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT state FROM orders WHERE id = ?", (order_id,))
            found = await cur.fetchone()
            if found is None:
                raise NotFound(f"no order {order_id!r}")
            if target is not None:
                order_transition(OrderState(found[0]), target)
            sets = {"payment_status": payment_status, "updated_at": time.time(), **columns}
            if target is not None:
                sets["state"] = target.value
            if reason is not None:
                sets["reason"] = reason
            await conn.execute(
                f"UPDATE orders SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                (*sets.values(), order_id),
            )
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            updated = await cur.fetchone()
            assert updated is not None
            order = order_out(updated)
            if event is not None:
                await queue_event(conn, event, order)
        if announce:
            await self.announce(order)
        return order

    async def log(self, order_id: str, provider: str, action: str, outcome: str) -> None:
        """One line of the payment log: every call to a provider and its answer."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO payment_log (order_id, provider, action, outcome, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (order_id, provider, action, outcome, time.time()),
            )

    async def announce(self, order: OrderOut) -> None:
        """Tell the buyer's room (their page shows the change)."""
        try:
            await events.publish(
                self.redis,
                order.show_id,
                {
                    "type": "order",
                    "viewer_id": order.viewer_id,
                    "order": msgspec.to_builtins(order),
                },
            )
        except Exception:  # the record is in SQLite; a lost room event is not a lost order
            log.warning("could not publish order %s", order.id, exc_info=True)
