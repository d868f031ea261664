"""Every key livesale writes in Redis has a lifetime or a bound: after a realistic workload
(holds, releases, expiries, checkouts, a cancel, plants, chat, requests, moderation, a stock
import, one show ended and closed, another still live) each key is one of a known list of
structural keys whose size is bounded, or it expires."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
import websockets

from livesale import keys
from livesale.config import Settings
from livesale.room.state import CHAT_TAIL
from tests.conftest import LiveServer
from tests.orders.conftest import CHECKOUT
from tests.room.conftest import SKUS, Client, ShowSetup, make_show, new_viewer, ws_url

Check = Callable[[redis.Redis, str, re.Match[str]], None]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Holds that expire, and finished ones forgotten, within seconds; no grace period."""
    return replace(settings, hold_seconds=2, keep_finished_seconds=1, grace_seconds=0)


def hold(http: httpx.Client, show: str, token: str, sku: str, key: str) -> dict[str, Any]:
    made = http.post(
        f"/api/shows/{show}/holds",
        json={"sku": sku, "qty": 1, "idempotency_key": key},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def checkout(http: httpx.Client, hold_id: str, token: str) -> dict[str, Any]:
    paid = http.post(
        f"/api/holds/{hold_id}/checkout",
        json=CHECKOUT,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert paid.status_code == 201, paid.text
    return paid.json()  # type: ignore[no-any-return]


async def room_workload(
    stack: contextlib.AsyncExitStack, base: str, show: ShowSetup, viewers: list[tuple[str, str]]
) -> Client:
    """Chat, requests and votes, plants, a mute, slow mode and a deleted line in one room; its
    sockets stay open (their presence too) until ``stack`` closes. Returns a viewer's."""

    async def join(token: str) -> Client:
        ws = await stack.enter_async_context(websockets.connect(ws_url(base, show.id, token)))
        return Client(ws, json.loads(await asyncio.wait_for(ws.recv(), 30)))

    host = await join(show.host_token)
    clients = [await join(token) for _, token in viewers]
    for n, client in enumerate(clients):
        await client.send(type="chat", text=f"hello {n}")
        await client.expect("chat", lambda m, n=n: m["text"] == f"hello {n}")
        await client.send(type="plant", sku=SKUS[n % len(SKUS)])
        await client.expect("planted")
    await clients[0].send(type="request", sku=SKUS[1])
    await clients[0].expect("requests")
    await clients[1].send(type="vote", sku=SKUS[1])
    await clients[1].expect("requests")
    await clients[2].send(type="request", sku=SKUS[2])
    await clients[2].expect("requests")
    await clients[1].send(type="plant", sku=SKUS[1], want=False)
    await clients[1].expect("planted")
    await host.send(type="mute", viewer_id=viewers[0][0], seconds=60)
    await clients[0].expect("muted")
    line = (await host.send(type="chat", text="welcome"), await host.expect("chat"))[1]
    await host.send(type="delete_chat", id=line["id"])
    await host.expect("chat_deleted")
    await host.send(type="slow_mode", seconds=5)
    await host.expect("slow_mode")
    await host.send(type="feature", sku=SKUS[1])
    await host.expect("featured")
    return clients[-1]


def structural(live_show: str, ended_show: str, keep_ms: int) -> list[tuple[str, Check]]:
    """The keys that may live without a lifetime, each with the check of its bound."""
    tag = re.escape(live_show)

    def size(limit: int) -> Check:
        def check(r: redis.Redis, key: str, _: re.Match[str]) -> None:
            kind = r.type(key).decode()
            n = {"hash": r.hlen, "set": r.scard, "list": r.llen, "zset": r.zcard}[kind](key)
            assert n <= limit, (key, n)

        return check

    def counter(r: redis.Redis, key: str, _: re.Match[str]) -> None:
        assert r.type(key) == b"string" and len(r.get(key) or b"") <= 20, key

    def holds(r: redis.Redis, key: str, m: re.Match[str]) -> None:
        sku = m.group(1)
        assert r.hlen(key) == r.zcard(keys.hold_expiry(sku)) + r.zcard(keys.holds_done(sku))

    def finished(r: redis.Redis, key: str, _: re.Match[str]) -> None:
        seconds, micros = r.time()
        oldest = r.zrange(key, 0, 0, withscores=True)
        assert not oldest or oldest[0][1] >= seconds * 1000 + micros // 1000 - keep_ms - 5000

    def buyers(r: redis.Redis, key: str, _: re.Match[str]) -> None:
        for field, units in r.hgetall(key).items():
            assert int(units) > 0, (key, field)
            assert not field.decode().startswith(ended_show + "|"), (key, field)

    return [
        (re.escape(keys.STOCK_READY), counter),
        (re.escape(keys.HOLD_SKUS), size(len(SKUS))),
        (r"ls:\{([A-Z]+-\d)\}:stock", size(5)),  # the four counters and the ready mark
        (r"ls:\{([A-Z]+-\d)\}:holds", holds),
        (r"ls:\{([A-Z]+-\d)\}:expiry", size(100)),
        (r"ls:\{([A-Z]+-\d)\}:done", finished),
        (r"ls:\{([A-Z]+-\d)\}:buyers", buyers),
        (r"ls:\{([A-Z]+-\d)\}:returned", size(100)),
        # The offer of each show selling the SKU: the live one only, the other has ended.
        (r"ls:\{([A-Z]+-\d)\}:offers", size(1)),
        # The live show's own keys: as large as its line-up, its chat tail, its audience.
        (rf"ls:\{{show:{tag}\}}:state", size(4)),
        (rf"ls:\{{show:{tag}\}}:seq", counter),
        (rf"ls:\{{show:{tag}\}}:(lineup|requests|request-order|plants)", size(len(SKUS))),
        (rf"ls:\{{show:{tag}\}}:chat", size(CHAT_TAIL)),
        (rf"ls:\{{show:{tag}\}}:(mutes|voters:.+)", size(100)),
    ]


async def test_every_key_has_a_lifetime_or_a_bound(
    server: LiveServer, redis_client: redis.Redis
) -> None:
    """After the workload, SCAN finds only keys that expire (PTTL > 0) or structural keys
    within their bounds: the ended show's room and its viewers' plants expire, and finished
    holds and their buy clicks' records are gone already."""
    ended = make_show(server.url, server.api_key, replay_sales=False)
    live = make_show(server.url, server.api_key)
    viewers = [new_viewer(server.url, f"v{n}") for n in range(6)]
    async with contextlib.AsyncExitStack() as stack:
        late = [await room_workload(stack, server.url, show, viewers) for show in (ended, live)][0]
        await settle(server, redis_client, ended, live, viewers)
        check_keys(redis_client, ended, live)
        # Once the closed show's keys have expired, a viewer still in its room writes nothing.
        redis_client.delete(*keys.show_keys(ended.id, SKUS))
        for message in ({"type": "chat", "text": "anyone?"}, {"type": "plant", "sku": SKUS[0]}):
            await late.send(**message)
            assert (await late.expect("error"))["code"] == "show_ended"
        left = [k.decode() for k in redis_client.scan_iter(match=f"ls:{{show:{ended.id}}}:*")]
        assert all(redis_client.pttl(k) > 0 for k in left), left  # presence and plants only
        assert not {keys.show_chat(ended.id), keys.show_seq(ended.id)} & set(left)


async def settle(
    server: LiveServer,
    redis_client: redis.Redis,
    ended: ShowSetup,
    live: ShowSetup,
    viewers: list[tuple[str, str]],
) -> None:
    """Holds held, retried, bought, released and left to expire in both shows; a cancel, a
    stock import, and the end of ``ended`` until its closing is done and every hold is over."""
    with server.client() as http, server.client(headers=server.merchant) as merchant:
        bought = []
        for n, (_, token) in enumerate(viewers):
            for show in (ended, live):
                made = hold(http, show.id, token, SKUS[n % len(SKUS)], f"k{n}")
                assert hold(http, show.id, token, SKUS[n % len(SKUS)], f"k{n}") == made  # retry
                if n % 3 == 0:
                    bought.append(checkout(http, made["hold_id"], token))
                elif n % 3 == 1:
                    released = http.delete(
                        f"/api/holds/{made['hold_id']}",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert released.status_code == 200, released.text
                # the rest expire
        cancel = next(o for o in bought if o["show_id"] == live.id)
        assert merchant.post(f"/api/orders/{cancel['id']}/cancel").status_code == 200
        products = [
            {"sku": s, "title": s, "price": {"amount": 990, "currency": "EUR"}, "stock": 30}
            for s in SKUS
        ]
        assert merchant.post("/api/products/import", json=products).status_code == 201
        assert merchant.post(f"/api/shows/{ended.id}/end").status_code == 200
        await until(lambda: merchant.get(f"/api/shows/{ended.id}/fulfilment").is_success)
    # Every hold over, and forgotten.
    await until(lambda: not redis_client.exists(*(keys.holds(sku) for sku in SKUS)))


async def until(check: Callable[[], object], seconds: float = 60) -> None:
    """Wait for ``check()`` without stopping the room sockets' event loop."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def check_keys(redis_client: redis.Redis, ended: ShowSetup, live: ShowSetup) -> None:
    """Every key expires or is structural within its bound; what should expire does."""
    rules = [(re.compile(p), c) for p, c in structural(live.id, ended.id, 1000)]
    found = [raw.decode() for raw in redis_client.scan_iter(count=1000)]
    expiring: list[str] = []
    for key in found:
        if redis_client.pttl(key) > 0:
            expiring.append(key)
            continue
        for pattern, check in rules:
            if match := pattern.fullmatch(key):
                check(redis_client, key, match)
                break
        else:
            raise AssertionError(f"{key} ({redis_client.type(key).decode()}) never expires")
    tag = f"ls:{{show:{ended.id}}}:"
    for kind in ("state", "lineup", "seq", "chat", "requests", "plants", "mutes", "presence"):
        assert tag + kind in expiring, kind
    assert any(k.startswith(tag + "planted:") for k in expiring)
    assert not [k for k in found if ":idem:" in k]  # the buy clicks' records went with the holds
    assert any(k.startswith(f"ls:{{show:{live.id}}}:planted:") for k in expiring)
    assert f"ls:{{show:{live.id}}}:presence" in expiring
