"""Room fixtures: a show with a line-up, viewers, and real ``websockets`` clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import LiveServer

SKUS = ("LIP-1", "EYE-2", "SKIN-3", "HAIR-4")


@dataclass
class ShowSetup:
    id: str
    host_token: str
    skus: tuple[str, ...] = SKUS


def make_show(base: str, api_key: str, stock: int = 20, *, replay_sales: bool = True) -> ShowSetup:
    """A live show whose line-up holds :data:`SKUS`, each with ``stock`` units
    (``replay_sales=False``: sold only while live)."""
    with httpx.Client(base_url=base, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {api_key}"
        products = [
            {"sku": s, "title": f"Item {s}", "price": {"amount": 990, "currency": "EUR"}}
            for s in SKUS
        ]
        for p in products:
            assert http.post("/api/products", json={**p, "stock": stock}).status_code in (200, 201)
        body = {"title": "Glow", "host_name": "Mia", "replay_sales": replay_sales}
        created = http.post("/api/shows", json=body).json()
        show = ShowSetup(created["id"], created["host_token"])
        put = http.put(f"/api/shows/{show.id}/lineup", json=[{"sku": s} for s in SKUS])
        assert put.status_code == 200, put.text
        assert http.post(f"/api/shows/{show.id}/start").status_code == 200
    return show


def new_viewer(base: str, nickname: str) -> tuple[str, str]:
    """A viewer id and token from ``POST /api/viewers``."""
    body = httpx.post(f"{base}/api/viewers", json={"nickname": nickname}, timeout=30).json()
    return body["viewer_id"], body["token"]


def ws_url(base: str, show_id: str, token: str) -> str:
    return base.replace("http://", "ws://") + f"/ws/shows/{show_id}?token={token}"


@dataclass
class Client:
    """A room client: keeps every frame it reads, in order."""

    ws: ClientConnection
    snapshot: dict[str, Any]
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 30) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(frame)
        return frame  # type: ignore[no-any-return]

    async def expect(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] = lambda m: True,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """The next frame of type ``kind`` matching ``where``, skipping the others. The deadline
        only catches a hang: the suite also runs on a machine whose cores are busy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} frame in {timeout}s; saw {self.seen[-5:]}")
            msg = await self.recv(left)
            if msg["type"] == kind and where(msg):
                return msg

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Every frame that arrives in the next ``seconds``."""
        got: list[dict[str, Any]] = []
        with_deadline = asyncio.get_running_loop().time() + seconds
        while True:
            left = with_deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return got
            try:
                got.append(await self.recv(left))
            except TimeoutError:
                return got


Connect = Callable[..., Any]


@pytest.fixture
def show(server: LiveServer) -> ShowSetup:
    return make_show(server.url, server.api_key)


@pytest.fixture
async def connect(server: LiveServer) -> AsyncIterator[Connect]:
    """``await connect(show, token, base=...)`` -> a :class:`Client` that has its snapshot."""
    opened: list[ClientConnection] = []

    async def make(show: ShowSetup, token: str, base: str | None = None, **kw: Any) -> Client:
        ws = await websockets.connect(ws_url(base or server.url, show.id, token), **kw)
        opened.append(ws)
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert snapshot["type"] == "snapshot", snapshot
        return Client(ws, snapshot)

    yield make
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


class View:
    """A client's picture of the room, built the way a page builds it: a snapshot, then events.
    ``gap`` turns true when a sequenced frame skips a number."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.gap = False
        self.reset(snapshot)

    def reset(self, snapshot: dict[str, Any]) -> None:
        self.seq: int = snapshot["seq"]
        self.featured = snapshot["featured"]
        self.requests = snapshot["requests"]
        self.chat = [line["id"] for line in snapshot["chat"]]
        self.slow_mode = snapshot["slow_mode"]
        self.state = snapshot["show"]["state"]
        self.lineup = [item["sku"] for item in snapshot["lineup"]["items"]]

    def apply(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "snapshot":
            self.gap = False
            self.reset(msg)
            return
        if msg["seq"] > self.seq + 1:
            self.gap = True
        if kind in ("featured", "requests", "chat", "chat_deleted", "slow_mode", "show", "lineup"):
            if msg["seq"] <= self.seq:
                return
            self.seq = msg["seq"]
        match kind:
            case "featured":
                self.featured = msg["sku"]
            case "requests":
                self.requests = msg["queue"]
            case "chat":
                self.chat = (self.chat + [msg["id"]])[-50:]
            case "chat_deleted":
                self.chat = [i for i in self.chat if i != msg["id"]]
            case "slow_mode":
                self.slow_mode = msg["seconds"]
            case "show":
                self.state = msg["state"]
            case "lineup":
                self.lineup = [item["sku"] for item in msg["lineup"]["items"]]

    def same_as(self, snapshot: dict[str, Any]) -> bool:
        other = View(snapshot)
        keys_ = ("featured", "requests", "chat", "slow_mode", "state", "lineup", "seq")
        return all(getattr(self, k) == getattr(other, k) for k in keys_)
