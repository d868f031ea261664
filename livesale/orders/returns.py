"""Cancel and refund: the merchant gives money back, and the units go back on sale.

* **Cancel** (before capture): the authorization is voided (nothing to void for a manual
  order still due), the order becomes ``cancelled`` and every unit returns to ``available``.
* **Refund** (after capture, or a manual order marked paid): some or all units; the money for
  them is refunded, the units return, and the order becomes ``refunded`` once every unit has.

Every step is written down before the next one starts, so a crash anywhere is finished at
start-up (:meth:`Returns.resume`), never repeated: a refund is a ``refunds`` row (``pending``)
before the provider is asked and ``done`` after; returned units are counted in
``orders.returned_qty`` before the ``stock_return`` script moves them and in
``restocked_qty`` after (the script moves each unit once however often it runs). Each return
also leaves a line in the SKU's stock ledger, and the merchant's webhook hears
``order.canceled`` or ``order.refunded``.
"""

from __future__ import annotations

import logging
import time

import msgspec

from livesale.db import Row
from livesale.errors import Conflict, InvalidTransition, ValidationFailed
from livesale.lua import Scripts, calls
from livesale.orders.book import OrderBook, order_out, payment_of
from livesale.orders.payments import Provider
from livesale.orders.state import IN_FLIGHT, OrderState, buyer_field, order_transition
from livesale.orders.webhooks import enqueue

log = logging.getLogger("livesale.orders")

#: Payment states in which money was taken: refund, not cancel.
TAKEN = ("captured", "paid", "partially_refunded")


class Returns:
    """Cancels, refunds and the units they give back."""

    def __init__(self, book: OrderBook, scripts: Scripts, providers: dict[str, Provider]) -> None:
        self.book = book
        self.db = book.db
        self.scripts = scripts
        self.providers = providers

    def _provider(self, row: Row) -> Provider:
        found = self.providers.get(row["provider"])
        if found is None:
            raise Conflict(
                f"the order was paid with {row['provider']}, which this server does not enable"
                " now; start it with that provider to give the money back"
            )
        return found

    # --- cancel -------------------------------------------------------------------------------

    async def cancel(self, order_id: str, reason: str = "", *, at_provider: bool = False) -> str:
        """Cancel a confirmed order not yet captured: void, units back. Cancelling a cancelled
        order changes nothing. ``at_provider``: the provider already cancelled the payment."""
        row = await self.book.row(order_id)
        state = OrderState(row["state"])
        if state is OrderState.CANCELLED:
            return order_id
        if state in IN_FLIGHT:
            raise Conflict("the buyer's checkout is still in progress; try again in a moment")
        if state is not OrderState.CONFIRMED:
            raise InvalidTransition(
                f"order is {state.value}; only a confirmed order can be cancelled",
                state=state.value,
            )
        if row["payment_status"] in TAKEN or int(row["returned_qty"]):
            raise InvalidTransition(
                f"the payment was {row['payment_status']}: refund the order instead",
                state=state.value,
            )
        status = "voided"
        if not at_provider:
            provider = self._provider(row)
            status = await provider.void(payment_of(row))
            await self.book.log(order_id, provider.name, "void", status)
            if status == "captured":
                raise InvalidTransition(
                    "the payment was captured meanwhile: refund the order instead",
                    state=state.value,
                )
        await self.book.move(
            order_id,
            OrderState.CANCELLED,
            status,
            reason or "cancelled by the merchant",
            event="order.canceled",
            returned_qty=int(row["qty"]),
        )
        await self.restock(order_id)
        return order_id

    async def cancel_unpaid(self, show_id: str, reason: str = "") -> list[str]:
        """Cancel every confirmed manual order of the show whose payment is still due."""
        rows = await self.db.fetchall(
            "SELECT id FROM orders WHERE show_id = ? AND state = 'confirmed'"
            " AND provider = 'manual' AND payment_status = 'due' ORDER BY created_at, id",
            (show_id,),
        )
        cancelled = []
        for row in rows:
            try:
                cancelled.append(
                    await self.cancel(row["id"], reason or "not paid: cancelled by the merchant")
                )
            except InvalidTransition:
                continue  # marked paid meanwhile
        return cancelled

    # --- refund -------------------------------------------------------------------------------

    async def refund(
        self, order_id: str, qty: int | None = None, reason: str = "", key: str | None = None
    ) -> str:
        """Refund ``qty`` units (default: all not yet given back) of a captured order. The same
        ``key`` never refunds twice."""
        row = await self.book.row(order_id)
        state = OrderState(row["state"])
        if state is not OrderState.CONFIRMED:
            raise InvalidTransition(
                f"order is {state.value}; only a confirmed, paid order can be refunded",
                state=state.value,
            )
        if row["payment_status"] not in TAKEN:
            raise InvalidTransition(
                f"the payment is {row['payment_status']}, not taken yet: cancel the order instead",
                state=state.value,
            )
        remaining = int(row["qty"]) - int(row["returned_qty"])
        units = remaining if qty is None else qty
        if not 1 <= units <= remaining:
            raise ValidationFailed(
                f"the order has {remaining} unit(s) left to refund", remaining=remaining
            )
        if units == remaining:
            amount = int(row["amount"]) - int(row["refunded_amount"])
        else:
            amount = int(row["unit_amount"]) * units
        full_key = f"{order_id}:{key}" if key else f"{order_id}:refund:{remaining - units}"
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT id, state, qty FROM refunds WHERE key = ?", (full_key,)
            )
            found = await cur.fetchone()
            if found is None:
                cur = await conn.execute(
                    "INSERT INTO refunds (order_id, qty, amount, key, state, outcome, created_at)"
                    " VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
                    (order_id, units, amount, full_key, reason, time.time()),
                )
                made = await cur.fetchone()
                assert made is not None
                refund_id = int(made[0])
            elif int(found["qty"]) != units:
                raise ValidationFailed("this idempotency key was used for another refund")
            else:
                refund_id = int(found["id"])
                if found["state"] == "done":
                    return order_id
        await self._finish_refund(refund_id)
        return order_id

    async def _finish_refund(self, refund_id: int) -> None:
        refund = await self.db.fetchone("SELECT * FROM refunds WHERE id = ?", (refund_id,))
        assert refund is not None
        if refund["state"] != "pending":
            return
        row = await self.book.row(refund["order_id"])
        provider = self._provider(row)
        payment = payment_of(row)
        account = await provider.status(payment)
        already = account.refunded >= int(row["refunded_amount"]) + int(refund["amount"]) > 0
        if already and provider.name != "manual":
            status = "refunded" if account.refunded >= payment.amount else "partially_refunded"
        else:
            status = await provider.refund(payment, int(refund["amount"]), refund["key"])
        await self.book.log(row["id"], provider.name, "refund", status)
        await self._record_refund(row, refund, status)
        await self.restock(row["id"])

    async def _record_refund(self, row: Row, refund: Row, provider_status: str) -> None:
        order_id = row["id"]
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE refunds SET state = 'done', done_at = ? WHERE id = ? AND state = 'pending'",
                (time.time(), refund["id"]),
            )
            if not cur.rowcount:
                return  # finished by another call meanwhile
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            current = await cur.fetchone()
            assert current is not None
            returned = int(current["returned_qty"]) + int(refund["qty"])
            refunded = int(current["refunded_amount"]) + int(refund["amount"])
            whole = returned >= int(current["qty"])
            state = current["state"]
            if whole:
                state = order_transition(OrderState(state), OrderState.REFUNDED).value
            if provider_status not in ("refunded", "partially_refunded"):
                provider_status = "refunded" if whole else "partially_refunded"
            await conn.execute(
                "UPDATE orders SET state = ?, payment_status = ?, returned_qty = ?,"
                " refunded_amount = ?, updated_at = ? WHERE id = ?",
                (state, provider_status, returned, refunded, time.time(), order_id),
            )
            cur = await conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
            updated = await cur.fetchone()
            assert updated is not None
            order = order_out(updated)
            data = msgspec.to_builtins(order)
            data["refund"] = {
                "qty": int(refund["qty"]),
                "amount": {"amount": int(refund["amount"]), "currency": order.total.currency},
            }
            await enqueue(conn, "order.refunded", data, test=order.test)
        await self.book.announce(order)

    async def refunded_at_provider(self, order_id: str, refunded_total: int) -> None:
        """The provider reports more money refunded than livesale recorded (a refund made in
        the provider's own dashboard): record it; when it is the whole amount, every unit
        not yet given back returns too."""
        row = await self.book.row(order_id)
        asked = await self.db.fetchone(
            "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE order_id = ? AND state = 'pending'",
            (order_id,),
        )
        # Refunds livesale itself asked for and has not recorded yet are not someone else's.
        extra = refunded_total - int(row["refunded_amount"]) - int(asked[0] if asked else 0)
        if extra <= 0 or row["state"] != OrderState.CONFIRMED.value:
            return
        whole = int(row["refunded_amount"]) + extra >= int(row["amount"])
        units = int(row["qty"]) - int(row["returned_qty"]) if whole else 0
        key = f"{order_id}:provider:{refunded_total}"
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO refunds (order_id, qty, amount, key, state, outcome, created_at)"
                " VALUES (?, ?, ?, ?, 'pending', 'refunded at the provider', ?)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (order_id, units, extra, key, time.time()),
            )
            made = await cur.fetchone()
            refund_id = int(made[0]) if made else 0
        if not refund_id:
            return
        refund = await self.db.fetchone("SELECT * FROM refunds WHERE id = ?", (refund_id,))
        assert refund is not None
        # A partial refund by hand is money only: the units stay sold (qty 0).
        await self._record_refund(row, refund, "refunded" if whole else "partially_refunded")
        await self.restock(order_id)

    # --- units back on sale -------------------------------------------------------------------

    async def restock(self, order_id: str) -> None:
        """Return the order's given-back units to ``available`` (each once) and ledger it."""
        row = await self.book.row(order_id)
        total, known = int(row["returned_qty"]), int(row["restocked_qty"])
        if known >= total:
            return
        why = "refunded" if int(row["refunded_amount"]) else "cancelled"
        reason = f"order {order_id} {why}: {total - known} unit(s) back on sale"
        result = await self.scripts.run(
            calls.stock_return(
                sku=row["sku"],
                show_id=row["show_id"],
                order_id=order_id,
                buyer=buyer_field(row["show_id"], row["viewer_id"]),
                total=total,
                known=known,
            )
        )
        status = result[0].decode() if isinstance(result[0], bytes) else str(result[0])
        if status != "ok":
            log.warning("order %s: units not back yet (%s); retried at start-up", order_id, status)
            return
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE orders SET restocked_qty = ? WHERE id = ? AND restocked_qty < ?",
                (total, order_id, total),
            )
            if cur.rowcount:
                cur = await conn.execute(
                    "SELECT on_hand FROM products WHERE sku = ?", (row["sku"],)
                )
                product = await cur.fetchone()
                await conn.execute(
                    "INSERT INTO stock_ledger (sku, at, actor, delta, on_hand, reason)"
                    " VALUES (?, ?, 'orders', 0, ?, ?)",
                    (row["sku"], time.time(), int(product[0]) if product else 0, reason),
                )

    async def resume(self) -> None:
        """Finish refunds and returns a crash interrupted."""
        for refund in await self.db.fetchall("SELECT id FROM refunds WHERE state = 'pending'"):
            try:
                await self._finish_refund(int(refund["id"]))
            except Exception:
                log.exception("refund %s not finished yet", refund["id"])
        for row in await self.db.fetchall(
            "SELECT id FROM orders WHERE restocked_qty < returned_qty"
        ):
            await self.restock(row["id"])
