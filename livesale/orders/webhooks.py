"""The merchant's webhook: signed announcements of ``order.paid``, ``order.canceled``,
``order.refunded``, ``order.capture_failed`` and ``show.fulfilment_ready``. A delivery about
money of the test provider carries ``"test": true`` (and so does its order).

Deliveries are written to SQLite in the same transaction as the change they announce (an
outbox), so nothing is lost to a crash; a worker posts them with retries and exponential
backoff. Every delivery carries ``X-Livesale-Signature: sha256=<hex HMAC-SHA256 of the raw body
with the merchant's secret>``; a failing endpoint never blocks a sale or a show's end.

Where a delivery may go (the body carries buyers' names and addresses, and whether an address
answers would show a merchant key's holder the inside of the network):

* https only, unless ``--allow-insecure-webhooks``;
* public (globally routable) addresses only, unless ``--allow-private-webhooks``: not loopback,
  private, link-local, shared, multicast or reserved ones. The URL's own address is checked when
  it is set; a host name is resolved at every delivery, every address it has is checked, and the
  request goes to the address checked (the name still in ``Host`` and in TLS), so a name that
  changes its answer between the check and the connection (DNS rebinding) reaches nothing else.

A refused delivery is a failed attempt whose ``last_error`` says which rule refused it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from livesale.db import Connection, Database
from livesale.errors import NotFound, ValidationFailed, WebhookNotHttps, WebhookNotPublic
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


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_kind(address: Address) -> str:
    """What kind of non-public address ``address`` is, or "" for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, found in (
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("an unspecified", address.is_unspecified),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-global", not address.is_global),
    ):
        if found:
            return kind
    return ""


def check_url(url: str, *, insecure: bool, private: bool) -> None:
    """Refuse (422, naming the rule) a webhook URL that is not https, unless ``insecure``, or
    whose host is a non-public address literal, unless ``private``. A host name is checked
    at each delivery (:func:`resolve`)."""
    split = urlsplit(url)
    if split.scheme.lower() not in ("https", "http") or not split.hostname:
        raise ValidationFailed(f"{url!r} is not an http(s) URL with a host")
    if split.scheme.lower() != "https" and not insecure:
        raise WebhookNotHttps(
            "the webhook URL must use https: deliveries carry buyers' addresses"
            " (--allow-insecure-webhooks allows http)"
        )
    _port(url)
    try:
        split.hostname.encode("idna")
    except UnicodeError as exc:
        raise ValidationFailed(f"{split.hostname!r} is not a host name: {exc}") from exc
    try:
        literal = ipaddress.ip_address(split.hostname)
    except ValueError:
        return
    if not private and (kind := address_kind(literal)):
        raise WebhookNotPublic(_not_public(split.hostname, literal, kind))


def _port(url: str) -> int:
    """The port a delivery to ``url`` connects to (422 for a malformed one)."""
    split = urlsplit(url)
    try:
        return split.port or (443 if split.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise ValidationFailed(f"{url!r} has a bad port") from exc


def _not_public(host: str, address: Address, kind: str) -> str:
    where = host if host == str(address) else f"{host} resolves to {address}, which"
    return (
        f"{where} is {kind} address; webhooks go to public addresses only"
        " (--allow-private-webhooks allows others)"
    )


async def resolve(url: str, *, private: bool) -> Address | None:
    """The address a delivery to ``url`` connects to, after every address of its host passed
    the rules (:class:`WebhookNotPublic` otherwise; :class:`ValidationFailed` when the host
    does not resolve); ``None`` with ``private``, when the client may resolve it itself."""
    if private:
        return None
    split = urlsplit(url)
    host = split.hostname or ""
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, _port(url), type=socket.SOCK_STREAM),
            TIMEOUT_SECONDS,
        )
    except (TimeoutError, OSError, UnicodeError) as exc:
        raise ValidationFailed(f"the webhook's host {host} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if kind := address_kind(address):
            raise WebhookNotPublic(_not_public(host, address, kind))
    if not addresses:
        raise ValidationFailed(f"the webhook's host {host} has no address")
    return addresses[0]


def pinned(url: str, address: Address) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``url`` sent to ``address``: the URL to request, and the ``Host`` header and request
    extensions that keep its host name for the server and for TLS (SNI and the certificate's
    name are still checked against it)."""
    split = urlsplit(url)
    host = split.hostname or ""
    userinfo, at, authority = split.netloc.rpartition("@")
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = userinfo + at + literal + (f":{split.port}" if split.port else "")
    target = split._replace(netloc=netloc).geturl()
    return target, {"Host": authority}, {"sni_hostname": host}


def signature(secret: str, body: bytes) -> str:
    """The ``X-Livesale-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts."""
    return float(min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


async def enqueue(conn: Connection, event: str, data: Any, *, test: bool = False) -> None:
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

    def __init__(self, db: Database, *, insecure: bool = False, private: bool = False) -> None:
        self.db = db
        #: ``--allow-insecure-webhooks`` and ``--allow-private-webhooks``.
        self.insecure = insecure
        self.private = private

    async def configure(self, url: str) -> WebhookOut:
        """Set the URL and issue a new signing secret (shown in this answer); a URL the rules
        refuse is a 422 problem naming the rule (:func:`check_url`)."""
        check_url(url, insecure=self.insecure, private=self.private)
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
        headers = {
            "Content-Type": "application/json",
            "X-Livesale-Event": row["event"],
            "X-Livesale-Delivery": str(row["id"]),
            "X-Livesale-Signature": signature(secret, body),
        }
        extensions: dict[str, Any] = {}
        try:
            # Checked again on every delivery: a URL set before the rules, or a name whose
            # addresses changed since.
            check_url(url, insecure=self.insecure, private=self.private)
            address = await resolve(url, private=self.private)
            target = url
            if address is not None:
                target, host, extensions = pinned(url, address)
                headers.update(host)
            response = await client.post(
                target,
                content=body,
                headers=headers,
                extensions=extensions,
                timeout=TIMEOUT_SECONDS,
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except ValidationFailed as exc:
            error = f"refused: {exc.detail}"[:500]
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
