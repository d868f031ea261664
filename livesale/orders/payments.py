"""Payment providers behind one small protocol: ``authorize``, ``capture``, ``void``, ``refund``.

The idempotency key of every call is the order id: calling ``authorize`` twice for one order
charges once. Built in:

* ``test`` — deterministic test tokens, for demos and tests. ``tok_visa`` is authorized;
  ``tok_decline`` is declined; ``tok_timeout`` is authorized but the first answer is lost
  (:class:`PaymentTimeout`), so the caller must retry, and the retry returns the same
  authorization; ``tok_slow`` is authorized after a delay of :data:`SLOW_SECONDS`. The provider
  keeps its own durable record (the ``test_payments`` table) so idempotency survives a crash.
* ``manual`` — pay on delivery or by bank transfer: nothing is authorized; the order's payment
  is ``due`` until the merchant marks it paid.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from livesale.db import Database
from livesale.errors import ValidationFailed

#: How long ``tok_slow`` takes to be authorized.
SLOW_SECONDS = 2.0


class PaymentTimeout(Exception):
    """The provider did not answer in time; the call may or may not have happened."""


@dataclass(frozen=True)
class Authorization:
    """``status``: ``authorized``, ``declined`` or ``due`` (nothing to authorize)."""

    status: str
    reason: str = ""


class Provider(Protocol):
    name: str

    def check_token(self, token: str) -> None:
        """Raise :class:`ValidationFailed` for a token this provider cannot use."""

    async def authorize(
        self, order_id: str, amount: int, currency: str, token: str
    ) -> Authorization:
        """Reserve ``amount`` on the buyer's means of payment, once per ``order_id``."""

    async def capture(self, order_id: str) -> str:
        """Take the authorized money; returns the payment status afterwards."""

    async def void(self, order_id: str) -> str:
        """Cancel an authorization (no money taken); a no-op for an unknown order."""

    async def refund(self, order_id: str) -> str:
        """Give captured money back."""


class TestProvider:
    """The ``test`` provider; see the module docstring for its tokens."""

    name = "test"
    TOKENS = ("tok_visa", "tok_decline", "tok_timeout", "tok_slow")

    def __init__(self, db: Database) -> None:
        self.db = db

    def check_token(self, token: str) -> None:
        if token not in self.TOKENS:
            raise ValidationFailed(
                f"unknown test token {token!r}; use one of {', '.join(self.TOKENS)}"
            )

    async def authorize(
        self, order_id: str, amount: int, currency: str, token: str
    ) -> Authorization:
        row = await self.db.fetchone(
            "SELECT status FROM test_payments WHERE order_id = ?", (order_id,)
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
                "INSERT OR IGNORE INTO test_payments"
                " (order_id, token, amount, currency, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (order_id, token, amount, currency, status, now, now),
            )
        if token == "tok_timeout":
            # The charge happened; the answer is lost on its way back.
            raise PaymentTimeout("the test provider timed out (tok_timeout)")
        return Authorization(status, "card declined (tok_decline)" if status == "declined" else "")

    async def _move(self, order_id: str, frm: tuple[str, ...], to: str) -> str:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT status FROM test_payments WHERE order_id = ?", (order_id,)
            )
            row = await cur.fetchone()
            if row is None:
                return "none"
            if row[0] in frm:
                await conn.execute(
                    "UPDATE test_payments SET status = ?, updated_at = ? WHERE order_id = ?",
                    (to, time.time(), order_id),
                )
                return to
            return str(row[0])

    async def capture(self, order_id: str) -> str:
        return await self._move(order_id, ("authorized",), "captured")

    async def void(self, order_id: str) -> str:
        return await self._move(order_id, ("authorized",), "voided")

    async def refund(self, order_id: str) -> str:
        return await self._move(order_id, ("captured",), "refunded")


class ManualProvider:
    """The ``manual`` provider: pay on delivery or by transfer; the merchant marks it paid."""

    name = "manual"

    def check_token(self, token: str) -> None:
        return None

    async def authorize(
        self, order_id: str, amount: int, currency: str, token: str
    ) -> Authorization:
        return Authorization("due")

    async def capture(self, order_id: str) -> str:
        return "due"

    async def void(self, order_id: str) -> str:
        return "voided"

    async def refund(self, order_id: str) -> str:
        return "refunded"


def providers(db: Database) -> dict[str, Provider]:
    """Every built-in provider by name."""
    return {"test": TestProvider(db), "manual": ManualProvider()}
