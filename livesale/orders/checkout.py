"""Checkout and orders: SQLite first, then the payment provider, then the confirm script.

The order of steps is what makes a crash at any point recoverable (:meth:`Sales.recover`):

1. the order row is committed ``pending`` (``synchronous=FULL``);
2. the provider authorizes the amount, idempotency key = order id; the order becomes
   ``authorized`` (or ``declined``: ``402``, the hold stays for another try);
3. the confirm script moves the hold's units from held to sold only if the hold still lives;
   the order becomes ``confirmed``. If the hold expired meanwhile the authorization is voided
   and the order is ``expired`` (``409``): no money is kept for stock that was not confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from livesale import events
from livesale.db import Database
from livesale.errors import (
    Conflict,
    Forbidden,
    HoldExpired,
    InvalidTransition,
    NotFound,
    PaymentRequired,
    Unavailable,
    ValidationFailed,
)
from livesale.ids import ViewerClaims, new_id
from livesale.money import Money
from livesale.orders import webhooks
from livesale.orders.holds import HoldStore
from livesale.orders.messages import CheckoutIn, OrderOut, Shipping
from livesale.orders.payments import PaymentTimeout, Provider
from livesale.orders.state import IN_FLIGHT, HoldState, OrderState, order_transition

log = logging.getLogger("livesale.orders")

#: Authorization attempts when the provider times out (same idempotency key every time).
AUTHORIZE_ATTEMPTS = 3


def order_out(row: sqlite3.Row) -> OrderOut:
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
        total=Money(amount=row["amount"], currency=currency),
        state=row["state"],
        provider=row["provider"],
        payment_status=row["payment_status"],
        shipping=Shipping(row["ship_name"], row["ship_address"], row["ship_email"]),
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _clean(text: str, what: str) -> str:
    cleaned = " ".join(text.split()) if what != "address" else text.strip()
    if not cleaned:
        raise ValidationFailed(f"shipping {what} is empty")
    return cleaned


class Sales:
    """Checkout, the orders' state machine and its recovery."""

    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        holds: HoldStore,
        providers: dict[str, Provider],
    ) -> None:
        self.db = db
        self.redis = redis
        self.holds = holds
        self.providers = providers

    # --- reading ------------------------------------------------------------------------------

    async def order(self, order_id: str) -> OrderOut:
        row = await self.db.fetchone("SELECT * FROM orders WHERE id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no order {order_id!r}")
        return order_out(row)

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

    # --- checkout -----------------------------------------------------------------------------

    async def checkout(
        self, hold_id: str, viewer: ViewerClaims, body: CheckoutIn
    ) -> tuple[OrderOut, int]:
        """Pay for a hold; returns the order and the HTTP status (201 new, 200 already done).

        Raises :class:`PaymentRequired` when declined (the hold stays), :class:`HoldExpired`
        when the hold ended before it could be confirmed (the payment is voided),
        :class:`Unavailable` while stock is being rebuilt (the order finishes later).
        """
        provider = self.providers[body.payment.provider]
        provider.check_token(body.payment.token)
        shipping = Shipping(
            _clean(body.shipping.name, "name"),
            _clean(body.shipping.address, "address"),
            body.shipping.email.strip(),
        )
        hold = await self.holds.get(hold_id)
        if hold.viewer_id != viewer.vid:
            raise Forbidden("this hold belongs to another viewer")
        row = await self.db.fetchone(
            "SELECT * FROM orders WHERE hold_id = ? AND state IN"
            " ('pending', 'authorized', 'confirmed')",
            (hold_id,),
        )
        if row is not None:
            if row["state"] == OrderState.CONFIRMED.value:
                return order_out(row), 200
            if row["state"] == OrderState.PENDING.value:
                raise Conflict("a checkout of this hold is already in progress")
            order_id = str(row["id"])  # authorized: finish it
        else:
            if hold.state is not HoldState.HELD:
                raise InvalidTransition(f"the hold is {hold.state.value}", state=hold.state.value)
            order_id = new_id("or")
            await self._insert(order_id, hold, viewer, shipping, provider.name)
            await self._authorize(
                order_id, provider, hold.amount * hold.qty, hold.currency, body.payment.token
            )
        return await self._confirm(order_id, provider), 201

    async def _insert(
        self, order_id: str, hold: Any, viewer: ViewerClaims, shipping: Shipping, provider: str
    ) -> None:
        now = time.time()
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO orders (id, show_id, hold_id, viewer_id, nickname, sku, qty,"
                    " unit_amount, amount, currency, state, provider, ship_name, ship_address,"
                    " ship_email, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                    (
                        order_id,
                        hold.show_id,
                        hold.hold_id,
                        viewer.vid,
                        viewer.nick,
                        hold.sku,
                        hold.qty,
                        hold.amount,
                        hold.amount * hold.qty,
                        hold.currency,
                        provider,
                        shipping.name,
                        shipping.address,
                        shipping.email,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            # The partial unique index: another checkout of this hold got there first.
            raise Conflict("a checkout of this hold is already in progress") from exc

    async def _authorize(
        self, order_id: str, provider: Provider, amount: int, currency: str, token: str
    ) -> None:
        result = None
        for attempt in range(1, AUTHORIZE_ATTEMPTS + 1):
            try:
                result = await provider.authorize(order_id, amount, currency, token)
                break
            except PaymentTimeout:
                await self._log(order_id, provider.name, "authorize", f"timeout #{attempt}")
                await asyncio.sleep(0.05 * attempt)
        if result is None:
            status = await provider.void(order_id)
            await self._move(order_id, OrderState.CANCELLED, status, "payment provider timed out")
            raise Unavailable("the payment provider did not answer; nothing was charged")
        await self._log(order_id, provider.name, "authorize", result.status)
        if result.status == "declined":
            await self._move(order_id, OrderState.DECLINED, "declined", result.reason)
            raise PaymentRequired(result.reason or "the payment was declined", order_id=order_id)
        await self._move(order_id, OrderState.AUTHORIZED, result.status)

    async def _confirm(self, order_id: str, provider: Provider) -> OrderOut:
        order = await self.order(order_id)
        hold = await self.holds.get(order.hold_id)
        outcome = await self.holds.confirm(hold, order_id)
        if outcome.status == "unready":
            raise Unavailable(
                "stock is being rebuilt from the database; the order will complete shortly",
                order_id=order_id,
            )
        if outcome.status == "ok":
            return await self._move(order_id, OrderState.CONFIRMED, order.payment_status)
        status = await self._undo_payment(order_id, provider, order.payment_status)
        expired = await self._move(
            order_id, OrderState.EXPIRED, status, f"hold {outcome.status} before confirmation"
        )
        raise HoldExpired(
            "the hold ended before the payment completed; the payment was voided",
            order_id=expired.id,
            payment_status=expired.payment_status,
        )

    async def _undo_payment(self, order_id: str, provider: Provider, status: str) -> str:
        """Void an authorization, or refund money already captured."""
        action = "refund" if status == "captured" else "void"
        result = await (
            provider.refund(order_id) if action == "refund" else provider.void(order_id)
        )
        await self._log(order_id, provider.name, action, result)
        return result

    async def _log(self, order_id: str, provider: str, action: str, outcome: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO payment_log (order_id, provider, action, outcome, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (order_id, provider, action, outcome, time.time()),
            )

    async def _move(
        self, order_id: str, target: OrderState, payment_status: str, reason: str = ""
    ) -> OrderOut:
        """Move the order to ``target`` (checked against the state machine), queue its
        webhook, then tell the buyer's room."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT state FROM orders WHERE id = ?", (order_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no order {order_id!r}")
            order_transition(OrderState(row[0]), target)
            await conn.execute(
                "UPDATE orders SET state = ?, payment_status = ?, reason = ?, updated_at = ?"
                " WHERE id = ?",
                (target.value, payment_status, reason, time.time(), order_id),
            )
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            updated = await cur.fetchone()
            assert updated is not None
            order = order_out(updated)
            if target is OrderState.CONFIRMED and payment_status == "authorized":
                await webhooks.enqueue(conn, "order.paid", msgspec.to_builtins(order))
        await self._announce(order)
        return order

    async def _announce(self, order: OrderOut) -> None:
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

    async def mark_paid(self, order_id: str) -> OrderOut:
        """The merchant received a manual payment for a confirmed order."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no order {order_id!r}")
            if row["state"] != OrderState.CONFIRMED.value or row["payment_status"] != "due":
                raise InvalidTransition(
                    f"order is {row['state']} with payment {row['payment_status']}; "
                    "only a confirmed order with payment due can be marked paid",
                    state=row["state"],
                )
            await conn.execute(
                "UPDATE orders SET payment_status = 'paid', updated_at = ? WHERE id = ?",
                (time.time(), order_id),
            )
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            updated = await cur.fetchone()
            assert updated is not None
            order = order_out(updated)
            await webhooks.enqueue(conn, "order.paid", msgspec.to_builtins(order))
        await self._log(order_id, "manual", "mark_paid", "paid")
        await self._announce(order)
        return order

    # --- recovery -----------------------------------------------------------------------------

    async def recover(self, *, before: float | None = None, show_id: str | None = None) -> int:
        """Drive every in-flight order (last changed before ``before``) to a final state.

        ``pending``: the authorization may or may not have happened; it is voided and the
        order ``cancelled`` (the hold, if still live, can be checked out again).
        ``authorized``: the hold is confirmed if it still lives (``confirmed``), else the
        payment is voided (``expired``). Orders are left alone while stock is being rebuilt.
        Returns how many orders reached a final state.
        """
        sql = "SELECT * FROM orders WHERE state IN (?, ?)"
        params: list[Any] = [s.value for s in IN_FLIGHT]
        if before is not None:
            sql += " AND updated_at < ?"
            params.append(before)
        if show_id is not None:
            sql += " AND show_id = ?"
            params.append(show_id)
        done = 0
        for row in await self.db.fetchall(sql, params):
            try:
                if await self._recover_one(row):
                    done += 1
            except (InvalidTransition, NotFound):
                continue  # finished by its own request meanwhile
        return done

    async def _recover_one(self, row: sqlite3.Row) -> bool:
        order_id = str(row["id"])
        provider = self.providers[row["provider"]]
        if row["state"] == OrderState.PENDING.value:
            status = await self._undo_payment(order_id, provider, row["payment_status"])
            await self._move(order_id, OrderState.CANCELLED, status, "checkout interrupted")
            log.info("recovered order %s: cancelled, payment %s", order_id, status)
            return True
        try:
            hold = await self.holds.get(row["hold_id"])
        except NotFound:
            hold = None
        outcome = await self.holds.confirm(hold, order_id) if hold is not None else None
        if outcome is not None and outcome.status == "unready":
            return False
        if outcome is not None and outcome.status == "ok":
            await self._move(order_id, OrderState.CONFIRMED, row["payment_status"])
            log.info("recovered order %s: confirmed", order_id)
            return True
        status = await self._undo_payment(order_id, provider, row["payment_status"])
        await self._move(order_id, OrderState.EXPIRED, status, "hold ended before confirmation")
        log.info("recovered order %s: expired, payment %s", order_id, status)
        return True
