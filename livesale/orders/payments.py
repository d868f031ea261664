"""Payment providers behind one small protocol: ``prepare``, ``authorize``, ``status``,
``capture``, ``void``, ``refund``.

The merchant chooses which providers the server accepts (``--payments``); a buyer's checkout
naming any other is refused. Every call is keyed by the order id, so a retried call never moves
money twice. Built in:

* ``stripe`` — card payments with Stripe PaymentIntents (:mod:`livesale.orders._stripe`).
* ``manual`` — pay on delivery or by bank transfer: nothing is authorized; the order's payment
  is ``due`` until the merchant marks it paid (or cancels the order).
* ``test`` — deterministic test tokens, only when named or with ``--demo``; every order it
  makes is flagged ``test``. ``tok_visa`` is authorized; ``tok_decline`` is declined;
  ``tok_timeout`` is authorized but the first answer is lost (:class:`PaymentTimeout`), so the
  caller must retry, and the retry returns the same authorization; ``tok_slow`` is authorized
  after :data:`SLOW_SECONDS`. It keeps its own durable record (the ``test_payments`` table) so
  idempotency survives a crash.

Payment statuses (``orders.payment_status``): ``none`` (nothing asked yet), ``requires_action``
(the buyer's bank wants 3-D Secure), ``authorized``, ``captured``, ``voided``, ``declined``,
``partially_refunded``, ``refunded``, ``capture_failed``, and for ``manual`` ``due`` / ``paid``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from livesale.db import Database
from livesale.errors import BadGateway, ValidationFailed

#: How long ``tok_slow`` takes to be authorized.
SLOW_SECONDS = 2.0


class PaymentTimeout(Exception):
    """The provider did not answer in time; the call may or may not have happened."""


class ProviderError(BadGateway):
    """The provider could not be reached or refused the request for a reason not the buyer's
    (a bad key, an outage): a ``502`` problem."""


@dataclass(frozen=True)
class Payment:
    """What a provider is told about an order's money."""

    order_id: str
    amount: int
    currency: str
    #: The provider's own id of this payment (``prepare``'s answer), or "".
    ref: str = ""


@dataclass(frozen=True)
class Authorization:
    """A provider's account of a payment. ``status``: ``none`` (no money was ever reserved),
    ``requires_action`` (the buyer must authenticate: ``client_secret`` is for their browser),
    ``authorized``, ``captured``, ``voided``, ``declined`` or ``due`` (nothing to authorize).
    ``refunded``: the amount given back so far, as the provider counts it."""

    status: str
    reason: str = ""
    client_secret: str = ""
    refunded: int = 0


class Provider(Protocol):
    name: str
    #: Money of this provider is never real; its orders carry ``"test": true``.
    test: bool

    def check_token(self, token: str) -> None:
        """Raise :class:`ValidationFailed` for a token this provider cannot use."""

    async def prepare(self, order_id: str, amount: int, currency: str, token: str) -> str:
        """Set the payment up without moving money; returns the provider's reference, which
        the order stores before :meth:`authorize` is called."""

    async def authorize(self, payment: Payment, token: str) -> Authorization:
        """Reserve the amount on the buyer's means of payment, once per order."""

    async def status(self, payment: Payment) -> Authorization:
        """The provider's own state of the payment, for recovery and webhooks."""

    async def capture(self, payment: Payment) -> str:
        """Take the authorized money; returns the payment status afterwards."""

    async def void(self, payment: Payment) -> str:
        """Cancel an authorization (no money taken); returns the status afterwards."""

    async def refund(self, payment: Payment, amount: int, key: str) -> str:
        """Give ``amount`` of captured money back, once per ``key``; returns the status."""


class TestProvider:
    """The ``test`` provider; see the module docstring for its tokens."""

    name = "test"
    test = True
    TOKENS = ("tok_visa", "tok_decline", "tok_timeout", "tok_slow")

    def __init__(self, db: Database) -> None:
        self.db = db

    def check_token(self, token: str) -> None:
        if token not in self.TOKENS:
            raise ValidationFailed(
                f"unknown test token {token!r}; use one of {', '.join(self.TOKENS)}"
            )

    async def prepare(self, order_id: str, amount: int, currency: str, token: str) -> str:
        return ""

    async def authorize(self, payment: Payment, token: str) -> Authorization:
        row = await self.db.fetchone(
            "SELECT status FROM test_payments WHERE order_id = ?", (payment.order_id,)
        )
        if row is not None:
            # A retry with the same idempotency key: the first answer, never a second charge.
            return Authorization("declined" if row[0] == "declined" else "authorized")
        if token == "tok_slow":
            await asyncio.sleep(SLOW_SECONDS)
        status = "declined" if token == "tok_decline" else "authorized"
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO test_payments"
                " (order_id, token, amount, currency, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (payment.order_id, token, payment.amount, payment.currency, status, now, now),
            )
        if token == "tok_timeout":
            # The charge happened; the answer is lost on its way back.
            raise PaymentTimeout("the test provider timed out (tok_timeout)")
        return Authorization(status, "card declined (tok_decline)" if status == "declined" else "")

    async def status(self, payment: Payment) -> Authorization:
        row = await self.db.fetchone(
            "SELECT status, refunded FROM test_payments WHERE order_id = ?", (payment.order_id,)
        )
        if row is None:
            return Authorization("none")
        # A refund does not undo the capture: the money was taken, some of it given back.
        status = "captured" if row[0] == "refunded" else str(row[0])
        return Authorization(status, refunded=int(row[1]))

    async def _move(self, order_id: str, frm: tuple[str, ...], to: str) -> str:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT status FROM test_payments WHERE order_id = ?", (order_id,)
            )
            row = await cur.fetchone()
            if row is None:
                return "voided" if to == "voided" else "none"
            if row[0] in frm:
                await conn.execute(
                    "UPDATE test_payments SET status = ?, updated_at = ? WHERE order_id = ?",
                    (to, time.time(), order_id),
                )
                return to
            return str(row[0])

    async def capture(self, payment: Payment) -> str:
        return await self._move(payment.order_id, ("authorized",), "captured")

    async def void(self, payment: Payment) -> str:
        return await self._move(payment.order_id, ("authorized",), "voided")

    async def refund(self, payment: Payment, amount: int, key: str) -> str:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT status, amount, refunded FROM test_payments WHERE order_id = ?",
                (payment.order_id,),
            )
            row = await cur.fetchone()
            if row is None or row[0] not in ("captured", "refunded"):
                return str(row[0]) if row else "none"
            refunded = min(int(row[1]), int(row[2]) + amount)
            status = "refunded" if refunded >= int(row[1]) else "captured"
            await conn.execute(
                "UPDATE test_payments SET status = ?, refunded = ?, updated_at = ?"
                " WHERE order_id = ?",
                (status, refunded, time.time(), payment.order_id),
            )
        return "refunded" if status == "refunded" else "partially_refunded"


class ManualProvider:
    """The ``manual`` provider: pay on delivery or by transfer; the merchant marks it paid."""

    name = "manual"
    test = False

    def check_token(self, token: str) -> None:
        return None

    async def prepare(self, order_id: str, amount: int, currency: str, token: str) -> str:
        return ""

    async def authorize(self, payment: Payment, token: str) -> Authorization:
        return Authorization("due")

    async def status(self, payment: Payment) -> Authorization:
        return Authorization("due")

    async def capture(self, payment: Payment) -> str:
        return "due"

    async def void(self, payment: Payment) -> str:
        return "voided"

    async def refund(self, payment: Payment, amount: int, key: str) -> str:
        # The merchant gives the money back themselves; livesale records that it was.
        return "refunded"
