"""The merchant's webhook: signed announcements of ``order.paid``, ``order.canceled``,
``order.refunded``, ``order.capture_failed`` and ``show.fulfilment_ready``. A delivery about
money of the test provider carries ``"test": true`` (and so does its order).

Deliveries are written to SQLite in the same transaction as the change they announce (an
outbox), so nothing is lost to a crash; a worker posts them with retries and exponential
backoff. Every delivery carries ``X-Livesale-Signature: sha256=<hex HMAC-SHA256 of the raw body
with the merchant's secret>``; a failing endpoint never blocks a sale or a show's end.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

import aiosqlite
import httpx
import msgspec

from livesale.db import Database
from livesale.errors import NotFound
from livesale.ids import new_secret
from livesale.orders.messages import Delivery, WebhookOut

log = logging.getLogger("livesale.orders")

#: Attempts before a delivery is given up (and left in the log as ``failed``).
MAX_ATTEMPTS = 8
#: Backoff after attempt n is ``BACKOFF_BASE * 2**(n-1)`` seconds, at most ``BACKOFF_MAX``.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
TIMEOUT_SECONDS = 5.0

_encode = msgspec.json.Encoder().encode


def signature(secret: str, body: bytes) -> str:
    """The ``X-Livesale-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts."""
    return float(min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


async def enqueue(conn: aiosqlite.Connection, event: str, data: Any, *, test: bool = False) -> None:
    """Queue ``event`` inside the caller's write transaction (no-op without a webhook)."""
    cur = await conn.execute("SELECT 1 FROM webhook_endpoint WHERE id = 1")
    if await cur.fetchone() is None:
        return
    now = time.time()
    envelope = {"id": str(uuid.uuid4()), "event": event, "created_at": now, "data": data}
    if test:
        envelope["test"] = True
    body = _encode(envelope).decode()
    await conn.execute(
        "INSERT INTO webhook_deliveries (event, body, state, next_at, created_at)"
        " VALUES (?, ?, 'queued', ?, ?)",
        (event, body, now, now),
    )


class Webhooks:
    """The endpoint setting, the delivery log and the delivery worker's single step."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def configure(self, url: str) -> WebhookOut:
        """Set the URL and issue a new signing secret (shown in this answer)."""
        secret = new_secret("whsec")
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_endpoint (id, url, secret, updated_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret,"
                " updated_at = excluded.updated_at",
                (url, secret, time.time()),
            )
        return WebhookOut(url=url, secret=secret)

    async def endpoint(self) -> WebhookOut:
        row = await self.db.fetchone("SELECT url, secret FROM webhook_endpoint WHERE id = 1")
        if row is None:
            raise NotFound("no webhook is configured")
        return WebhookOut(url=row["url"], secret=row["secret"])

    async def deliveries(self, limit: int = 100) -> list[Delivery]:
        rows = await self.db.fetchall(
            "SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            Delivery(
                id=r["id"],
                event=r["event"],
                state=r["state"],
                attempts=r["attempts"],
                last_status=r["last_status"],
                last_error=r["last_error"],
                created_at=r["created_at"],
                delivered_at=r["delivered_at"],
            )
            for r in rows
        ]

    async def deliver_due(self, client: httpx.AsyncClient, limit: int = 20) -> int:
        """Post the deliveries that are due, once each; returns how many were attempted."""
        endpoint = await self.db.fetchone("SELECT url, secret FROM webhook_endpoint WHERE id = 1")
        if endpoint is None:
            return 0
        rows = await self.db.fetchall(
            "SELECT id, event, body, attempts FROM webhook_deliveries"
            " WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (time.time(), limit),
        )
        for row in rows:
            await self._attempt(client, endpoint["url"], endpoint["secret"], row)
        return len(rows)

    async def _attempt(self, client: httpx.AsyncClient, url: str, secret: str, row: Any) -> None:
        body = row["body"].encode()
        status: int | None = None
        error = ""
        try:
            response = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Livesale-Event": row["event"],
                    "X-Livesale-Delivery": str(row["id"]),
                    "X-Livesale-Signature": signature(secret, body),
                },
                timeout=TIMEOUT_SECONDS,
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempts = int(row["attempts"]) + 1
        now = time.time()
        if not error:
            new_state, next_at, delivered = "delivered", now, now
        elif attempts >= MAX_ATTEMPTS:
            new_state, next_at, delivered = "failed", now, None
            log.warning(
                "webhook %s #%s given up after %d attempts: %s",
                row["event"],
                row["id"],
                attempts,
                error,
            )
        else:
            new_state, next_at, delivered = "queued", now + backoff(attempts), None
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_at = ?,"
                " last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (new_state, attempts, next_at, status, error, delivered, row["id"]),
            )
