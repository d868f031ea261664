"""Shared set-up for the sale's tests: a shop with products, a live show and buyers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvloop

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.postgres import connect

CHECKOUT = {
    "payment": {"provider": "test", "token": "tok_visa"},
    "shipping": {
        "name": "Ada Lovelace",
        "address": "12 Analytical St, London",
        "email": "ada@example.com",
    },
}


def checkout_body(
    token: str = "tok_visa", provider: str = "test", **shipping: str
) -> dict[str, Any]:
    body = {
        "payment": {"provider": provider, "token": token},
        "shipping": dict(CHECKOUT["shipping"]),
    }
    body["shipping"].update(shipping)
    return body


@dataclass
class Shop:
    """Drives a server through its HTTP API like a merchant and many buyers would."""

    url: str
    api_key: str
    data_dir: Path
    signer: Any = None
    #: The server's store: its SQLite file, or its ``database_url``.
    database: Path | str = ""
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        if not self.database:
            self.database = self.data_dir / "livesale.db"
        self.client = httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.api_key}"}
        )

    @classmethod
    def of(cls, server: LiveServer) -> Shop:
        """A shop driving ``server``, reading its store and signing with its signer."""
        return cls(
            server.url,
            server.api_key,
            server.settings.data_dir,
            signer=server.app.state.services.signer,
            database=server.settings.database,
        )

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def product(self, sku: str, stock: int, amount: int = 1990, currency: str = "EUR") -> None:
        self.ok(
            self.client.post(
                "/api/products",
                json={
                    "sku": sku,
                    "title": f"Product {sku}",
                    "price": {"amount": amount, "currency": currency},
                    "stock": stock,
                },
            ),
            201,
        )

    def show(
        self, lineup: list[dict[str, Any]], start: bool = True, *, replay_sales: bool = True
    ) -> str:
        """A show of ``lineup``, live unless ``start`` is false; ``replay_sales=False`` for one
        sold only while live."""
        body = {"title": "Flash", "host_name": "Mia", "replay_sales": replay_sales}
        show = self.ok(self.client.post("/api/shows", json=body), 201)
        self.ok(self.client.put(f"/api/shows/{show['id']}/lineup", json=lineup))
        if start:
            self.ok(self.client.post(f"/api/shows/{show['id']}/start"))
        return str(show["id"])

    def end(self, show_id: str) -> None:
        self.ok(self.client.post(f"/api/shows/{show_id}/end"))

    def viewer(self, nickname: str = "buyer") -> dict[str, str]:
        """An ``Authorization`` header of a new viewer (through ``POST /api/viewers``)."""
        data = self.ok(self.client.post("/api/viewers", json={"nickname": nickname}), 201)
        return {"Authorization": f"Bearer {data['token']}"}

    def viewers(self, n: int) -> list[dict[str, str]]:
        """``n`` viewer headers, signed with the server's own secret (fast for big crowds)."""
        if self.signer is None:
            return [self.viewer(f"buyer{i}") for i in range(n)]
        return [{"Authorization": f"Bearer {self.signer.issue(f'buyer{i}')[1]}"} for i in range(n)]

    def stock(self, sku: str) -> dict[str, int]:
        level: dict[str, int] = self.ok(self.client.get(f"/api/stock/{sku}"))
        assert level["available"] + level["held"] + level["sold"] == level["on_hand"], level
        assert min(level["available"], level["held"], level["sold"]) >= 0, level
        return level

    def hold(
        self, show_id: str, headers: dict[str, str], sku: str, qty: int = 1, key: str = "k1"
    ) -> httpx.Response:
        return self.client.post(
            f"/api/shows/{show_id}/holds",
            json={"sku": sku, "qty": qty, "idempotency_key": key},
            headers=headers,
        )

    def checkout(
        self, hold_id: str, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self.client.post(
            f"/api/holds/{hold_id}/checkout", json=body or CHECKOUT, headers=headers
        )

    def db(self) -> Any:
        """A connection of the test's own to the server's store (SQLite or PostgreSQL), with
        :mod:`sqlite3`'s shape, rows by name or position."""
        return connect(self.database)

    def sold_in_db(self, sku: str) -> int:
        with self.db() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(qty), 0) FROM orders WHERE sku = ? AND state = 'confirmed'",
                (sku,),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self.client.close()


@pytest.fixture(autouse=True)
def uvloop_policy() -> Iterator[None]:
    """Serve (and burst) on uvloop like ``livesale serve`` does: the stock asyncio loop of this
    Python answers each keep-alive request ~40 ms late here (Nagle against delayed ACKs)."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield
    asyncio.set_event_loop_policy(previous)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The server's settings; a test that takes the :func:`receiver` (plain http on
    127.0.0.1) opts into such webhooks as a shop trying livesale out on one machine would."""
    if "receiver" in request.fixturenames:
        return replace(settings, allow_insecure_webhooks=True, allow_private_webhooks=True)
    return settings


@pytest.fixture
def shop(server: LiveServer) -> Iterator[Shop]:
    s = Shop.of(server)
    yield s
    s.close()


@dataclass
class Answer:
    """One HTTP answer of :func:`burst`."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def _one(url: str, method: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
    # A bare HTTP/1.1 client, one connection per buyer: httpx's pool serialises a crowd of
    # waiting requests so badly that it, not the server, would set the pace.
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        f"Content-Length: {len(payload)}",
        "Content-Type: application/json",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        data = await reader.read()
    finally:
        writer.close()
    head, _, content = data.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), content)


async def burst(url: str, requests: list[tuple[str, str, Any, dict[str, str]]]) -> list[Answer]:
    """Send every request at once (``method, path, json, headers``), each on its own
    connection like distinct buyers; the answers in the same order."""
    return list(await asyncio.gather(*(_one(url, *r) for r in requests)))


class Receiver(ThreadingHTTPServer):
    """A merchant's webhook endpoint on 127.0.0.1 that fails its first delivery."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures_left = 1


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.failures_left:
            self.server.failures_left -= 1
            self.send_response(500)
        else:
            self.server.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def wait_for(check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result
