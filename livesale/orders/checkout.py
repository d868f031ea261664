"""Checkout: SQLite first, then the payment provider, then the confirm script.

The order of steps is what makes a crash at any point recoverable (:meth:`Sales.sync`):

1. the order row is committed ``pending`` (``synchronous=FULL``), naming a provider the
   merchant enabled (any other is refused before anything is written);
2. the provider prepares the payment without moving money and the order stores the
   provider's reference (a Stripe PaymentIntent id);
3. the provider authorizes the amount, keyed by the order id. It may answer ``authorized``
   (the order becomes ``authorized``), ``declined`` (``402``, the hold stays for another try)
   or ``requires_action`` (3-D Secure: ``202`` with a ``next_action`` for the buyer's browser;
   the order stays ``pending`` until the provider itself reports the amount authorized,
   through the buyer's next checkout call, a webhook or recovery, whichever comes first);
4. the confirm script moves the hold's units from held to sold only if the hold still lives;
   the order becomes ``confirmed``. If the hold ended meanwhile, the authorization is voided
   and the order is ``expired`` (``409``): no money is kept for stock that was not confirmed.

:meth:`Sales.sync` brings one order in line with its provider's own account of the payment;
webhooks, the buyer's return from 3-D Secure and recovery after a crash all go through it, so
an event that comes twice, late or out of order changes nothing twice. Money that lands on an
order that is already final (a late authorization) is voided or refunded, never kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from livesale.db import Row
from livesale.errors import (
    BadGateway,
    Conflict,
    Forbidden,
    HoldExpired,
    IntegrityFailed,
    InvalidTransition,
    LivesaleError,
    NotFound,
    PaymentProviderRefused,
    PaymentRequired,
    Unavailable,
    ValidationFailed,
)
from livesale.ids import ViewerClaims, new_id
from livesale.orders.book import OrderBook, order_out, payment_of, queue_event
from livesale.orders.holds import HoldStore
from livesale.orders.messages import CheckoutIn, NextAction, OrderOut, Shipping
from livesale.orders.payments import (
    Authorization,
    Payment,
    PaymentTimeout,
    Provider,
    ProviderError,
)
from livesale.orders.returns import Returns
from livesale.orders.state import IN_FLIGHT, HoldState, OrderState

log = logging.getLogger("livesale.orders")

#: Authorization attempts when the provider times out (same idempotency key every time).
AUTHORIZE_ATTEMPTS = 3
#: Provider answers that leave an order waiting on the buyer or the provider.
WAITING = ("requires_action", "processing")


def _clean(text: str, what: str) -> str:
    cleaned = " ".join(text.split()) if what != "address" else text.strip()
    if not cleaned:
        raise ValidationFailed(f"shipping {what} is empty")
    return cleaned


class Sales:
    """Checkout, the orders' way to a final state, and its recovery."""

    def __init__(
        self,
        book: OrderBook,
        holds: HoldStore,
        providers: dict[str, Provider],
        returns: Returns,
    ) -> None:
        self.book = book
        self.db = book.db
        self.holds = holds
        self.providers = providers
        self.returns = returns
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def provider(self, name: str) -> Provider:
        """The enabled provider ``name``; a 422 ``payment-provider`` problem for any other."""
        found = self.providers.get(name)
        if found is None:
            accepted = ", ".join(self.providers) or "none"
            raise PaymentProviderRefused(
                f"this shop does not accept {name!r}; it accepts: {accepted}",
                accepted=list(self.providers),
            )
        return found

    def _lock(self, order_id: str) -> asyncio.Lock:
        lock = self._locks.get(order_id)
        if lock is None:
            lock = self._locks[order_id] = asyncio.Lock()
        return lock

    # --- checkout -----------------------------------------------------------------------------

    async def checkout(
        self, hold_id: str, viewer: ViewerClaims, body: CheckoutIn
    ) -> tuple[OrderOut, int]:
        """Pay for a hold; returns the order and the HTTP status (201 confirmed now, 200
        confirmed before, 202 waiting for the buyer's bank: see ``next_action``).

        Raises :class:`PaymentRequired` when declined (the hold stays), :class:`HoldExpired`
        when the hold ended before it could be confirmed (the payment is voided),
        :class:`Unavailable` while stock is being rebuilt (the order finishes later).
        """
        provider = self.provider(body.payment.provider)
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
            if row["state"] == OrderState.PENDING.value and row["payment_status"] not in WAITING:
                raise Conflict("a checkout of this hold is already in progress")
            # Back from the bank's authentication, or an authorized order to finish: the
            # provider's own account decides, never the browser's word.
            async with self._lock(row["id"]):
                return await self._resume(row["id"])
        if hold.state is not HoldState.HELD:
            raise InvalidTransition(f"the hold is {hold.state.value}", state=hold.state.value)
        order_id = new_id("or")
        await self._insert(order_id, hold, viewer, shipping, provider)
        async with self._lock(order_id):
            return await self._pay(order_id, provider, body.payment.token)

    async def _insert(
        self, order_id: str, hold: Any, viewer: ViewerClaims, shipping: Shipping, provider: Provider
    ) -> None:
        now = time.time()
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO orders (id, show_id, hold_id, viewer_id, nickname, sku, qty,"
                    " unit_amount, amount, currency, state, provider, ship_name, ship_address,"
                    " ship_email, created_at, updated_at, test)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
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
                        provider.name,
                        shipping.name,
                        shipping.address,
                        shipping.email,
                        now,
                        now,
                        int(provider.test),
                    ),
                )
        except IntegrityFailed as exc:
            # The partial unique index: another checkout of this hold got there first.
            raise Conflict("a checkout of this hold is already in progress") from exc

    async def _pay(self, order_id: str, provider: Provider, token: str) -> tuple[OrderOut, int]:
        row = await self.book.row(order_id)
        try:
            ref = await provider.prepare(order_id, int(row["amount"]), row["currency"], token)
        except ValidationFailed as exc:
            await self.book.move(order_id, OrderState.DECLINED, "declined", exc.detail)
            raise PaymentRequired(exc.detail, order_id=order_id) from exc
        except ProviderError as exc:
            await self.book.move(order_id, OrderState.CANCELLED, "none", str(exc))
            raise BadGateway(f"{exc}; nothing was charged") from exc
        if ref:
            # Bookkeeping only: the buyer's page has nothing new to show yet.
            await self.book.move(order_id, None, "none", announce=False, payment_ref=ref)
        payment = Payment(order_id, int(row["amount"]), row["currency"], ref)
        account = await self._authorize(provider, payment, token)
        return await self._settle(order_id, provider, account)

    async def _authorize(self, provider: Provider, payment: Payment, token: str) -> Authorization:
        order_id = payment.order_id
        for attempt in range(1, AUTHORIZE_ATTEMPTS + 1):
            try:
                account = await provider.authorize(payment, token)
            except PaymentTimeout:
                await self.book.log(order_id, provider.name, "authorize", f"timeout #{attempt}")
                await asyncio.sleep(0.05 * attempt)
                continue
            except ProviderError as exc:
                # It may or may not have happened: recovery asks the provider later.
                await self.book.log(order_id, provider.name, "authorize", f"error: {exc}")
                raise Unavailable(
                    "the payment provider did not answer; the order is settled as soon as it"
                    " does (you are never charged twice)",
                    order_id=order_id,
                ) from exc
            await self.book.log(order_id, provider.name, "authorize", account.status)
            return account
        status = await provider.void(payment)
        await self.book.move(order_id, OrderState.CANCELLED, status, "payment provider timed out")
        raise Unavailable("the payment provider did not answer; nothing was charged")

    async def _resume(self, order_id: str) -> tuple[OrderOut, int]:
        row = await self.book.row(order_id)
        if row["state"] == OrderState.CONFIRMED.value:
            return order_out(row), 200
        provider = self.provider(row["provider"])
        if row["state"] == OrderState.AUTHORIZED.value:
            return await self._confirm(order_id, provider), 201
        if row["state"] != OrderState.PENDING.value:
            raise InvalidTransition(f"order is {row['state']}", state=row["state"])
        account = await self._account(provider, row)
        await self.book.log(order_id, provider.name, "status", account.status)
        return await self._settle(order_id, provider, account)

    async def _account(self, provider: Provider, row: Row) -> Authorization:
        try:
            return await provider.status(payment_of(row))
        except ProviderError as exc:
            raise BadGateway(str(exc)) from exc

    async def _settle(
        self, order_id: str, provider: Provider, account: Authorization
    ) -> tuple[OrderOut, int]:
        """Move a pending order on by the provider's account of its payment."""
        match account.status:
            case "declined":
                reason = account.reason or "the payment was declined"
                await self.book.move(order_id, OrderState.DECLINED, "declined", reason)
                raise PaymentRequired(reason, order_id=order_id)
            case "requires_action" | "processing":
                order = await self.book.move(order_id, None, account.status)
                if account.client_secret:
                    action = NextAction("authenticate", account.client_secret)
                    order = order_out(await self.book.row(order_id), action)
                return order, 202
            case "authorized" | "due" | "captured":
                await self.book.move(order_id, OrderState.AUTHORIZED, account.status)
                return await self._confirm(order_id, provider), 201
            case "voided":
                await self.book.move(
                    order_id, OrderState.CANCELLED, "voided", "the payment was cancelled"
                )
                raise InvalidTransition("the payment was cancelled", state="cancelled")
        raise Unavailable(
            "the payment provider has not authorized this payment yet", order_id=order_id
        )

    async def _confirm(self, order_id: str, provider: Provider) -> OrderOut:
        row = await self.book.row(order_id)
        # By its id, not read first: a hold that finished long ago is forgotten ("gone"),
        # and the payment is then undone like that of an expired one.
        outcome = await self.holds.confirm(row["hold_id"], order_id)
        if outcome.status == "unready":
            raise Unavailable(
                "stock is being rebuilt from the database; the order will complete shortly",
                order_id=order_id,
            )
        if outcome.status == "ok":
            paid = row["payment_status"] in ("authorized", "captured")
            return await self.book.move(
                order_id,
                OrderState.CONFIRMED,
                row["payment_status"],
                event="order.paid" if paid else None,
            )
        status = await self._undo_payment(provider, row)
        expired = await self.book.move(
            order_id, OrderState.EXPIRED, status, f"hold {outcome.status} before confirmation"
        )
        raise HoldExpired(
            "the hold ended before the payment completed; the payment was voided",
            order_id=expired.id,
            payment_status=expired.payment_status,
        )

    async def _undo_payment(self, provider: Provider, row: Row) -> str:
        """Void an authorization, or refund money already captured; the status afterwards."""
        payment = payment_of(row)
        status = await provider.void(payment)
        action = "void"
        if status == "captured":
            action = "refund"
            status = await provider.refund(payment, payment.amount, f"{payment.order_id}:undo")
        await self.book.log(payment.order_id, provider.name, action, status)
        return status

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
            await queue_event(conn, "order.paid", order)
        await self.book.log(order_id, "manual", "mark_paid", "paid")
        await self.book.announce(order)
        return order

    # --- bringing an order in line with its provider ------------------------------------------

    async def sync(self, order_id: str, *, stalled: bool = False) -> bool:
        """Bring one order in line with its provider's own account of the payment; True if
        the order is settled afterwards (nothing more to wait for).

        ``stalled``: the order's own request is gone (a crash, a lost connection), so an
        order still waiting is given up once its hold is no longer live. Safe to call any
        number of times, from any process: each change is checked against the state machine
        and every provider call is idempotent.
        """
        async with self._lock(order_id):
            row = await self.book.row(order_id)
            provider = self.providers.get(row["provider"])
            if provider is None:
                log.warning(
                    "order %s was paid with %s, which this server does not enable: left as is",
                    order_id,
                    row["provider"],
                )
                return False
            account = await provider.status(payment_of(row))
            state = OrderState(row["state"])
            try:
                if state in IN_FLIGHT:
                    return await self._sync_in_flight(row, provider, account, stalled)
                if state is OrderState.CONFIRMED:
                    await self._sync_confirmed(row, account)
                    return True
                await self._sync_final(row, provider, account)
                return True
            except (HoldExpired, PaymentRequired, InvalidTransition):
                return True  # settled: expired, declined, or finished by its own request
            except Unavailable:
                return False  # stock is being rebuilt; next time

    async def _sync_in_flight(
        self, row: Row, provider: Provider, account: Authorization, stalled: bool
    ) -> bool:
        order_id = row["id"]
        if row["state"] == OrderState.AUTHORIZED.value:
            await self._confirm(order_id, provider)
            return True
        if account.status == "none":
            if not stalled:
                return False
            status = await provider.void(payment_of(row))
            await self.book.move(order_id, OrderState.CANCELLED, status, "checkout interrupted")
            log.info("recovered order %s: cancelled, payment %s", order_id, status)
            return True
        if account.status in WAITING:
            if stalled and not await self._hold_lives(row["hold_id"]):
                status = await self._undo_payment(provider, row)
                await self.book.move(
                    order_id, OrderState.EXPIRED, status, "hold ended before the payment completed"
                )
                log.info("order %s: hold ended while the payment waited; %s", order_id, status)
                return True
            if account.status != row["payment_status"]:
                await self.book.move(order_id, None, account.status)
            return False
        await self._settle(order_id, provider, account)
        return True

    async def _hold_lives(self, hold_id: str) -> bool:
        try:
            hold = await self.holds.get(hold_id)
        except NotFound:
            return False
        return hold.state is HoldState.HELD and hold.expires_at > time.time() * 1000

    async def _sync_confirmed(self, row: Row, account: Authorization) -> None:
        order_id = row["id"]
        ours = row["payment_status"]
        if account.status == "voided" and ours == "authorized":
            # Cancelled at the provider (by hand, or the authorization lapsed): the units go
            # back on sale and the merchant is told, rather than shipping unpaid goods.
            await self.returns.cancel(
                order_id, "the payment was cancelled at the payment provider", at_provider=True
            )
        elif account.status == "captured" and ours == "authorized":
            await self.book.move(order_id, None, "captured")
        if account.refunded > int(row["refunded_amount"]):
            await self.returns.refunded_at_provider(order_id, account.refunded)

    async def _sync_final(self, row: Row, provider: Provider, account: Authorization) -> None:
        """Money that reached an order already given up is given back, never kept."""
        if account.status in ("authorized", *WAITING) or (
            account.status == "captured" and account.refunded < int(row["amount"])
        ):
            if row["state"] == OrderState.REFUNDED.value:
                return
            status = await self._undo_payment(provider, row)
            await self.book.move(row["id"], None, status)
            log.warning(
                "order %s is %s but its payment was %s: %s",
                row["id"],
                row["state"],
                account.status,
                status,
            )

    # --- recovery -----------------------------------------------------------------------------

    async def recover(self, *, before: float | None = None, show_id: str | None = None) -> int:
        """Drive every in-flight order (last changed before ``before``) toward a final state
        by its provider's own account; returns how many settled."""
        sql = "SELECT id FROM orders WHERE state IN (?, ?)"
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
                if await self.sync(row["id"], stalled=True):
                    done += 1
            except (LivesaleError, ProviderError) as exc:
                log.warning("order %s not recovered yet: %s", row["id"], exc)
        return done

    async def reconcile(self) -> int:
        """At start-up: every order whose money may still move is checked against its
        provider (in-flight orders, and final ones whose payment was last seen reserved), so
        nothing is charged twice and no authorization is left dangling; then unfinished
        refunds and returns are completed. Returns how many orders were checked."""
        rows = await self.db.fetchall(
            "SELECT id FROM orders WHERE state IN ('pending', 'authorized')"
            " OR (state IN ('declined', 'expired', 'cancelled')"
            "     AND payment_status NOT IN ('voided', 'declined', 'refunded', 'due'))"
        )
        for row in rows:
            try:
                await self.sync(row["id"], stalled=True)
            except (LivesaleError, ProviderError) as exc:
                log.warning("order %s not reconciled yet: %s", row["id"], exc)
        await self.returns.resume()
        return len(rows)
