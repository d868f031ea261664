"""Fault drills: Redis loses its data, the server is killed mid-checkout, Redis restarts.

Every drill checks the invariants against the store of record (SQLite or PostgreSQL), not
only against Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from livesale import keys
from tests.conftest import ONE_ADDRESS_ARGS, create_key
from tests.orders.conftest import CHECKOUT, Shop, burst
from tests.postgres import connect


def stored_sold(database: Path | str, sku: str) -> tuple[int, int]:
    """(units in confirmed orders, on-hand) according to the store of record."""
    with connect(database) as conn:
        sold = conn.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM orders WHERE sku = ? AND state = 'confirmed'", (sku,)
        ).fetchone()[0]
        on_hand = conn.execute("SELECT on_hand FROM products WHERE sku = ?", (sku,)).fetchone()[0]
    return int(sold), int(on_hand)


def test_redis_flush_refuses_buys_until_rebuilt(shop: Shop, redis_client: redis.Redis) -> None:
    """After a flush: 503 while stock is rebuilt, then sold equals paid orders; no oversell."""
    shop.product("FLUSH", stock=10)
    show = shop.show([{"sku": "FLUSH"}])
    buyers = shop.viewers(6)
    for buyer in buyers[:4]:
        hold = shop.ok(shop.hold(show, buyer, "FLUSH", qty=2), 201)
        if buyer is not buyers[3]:
            shop.ok(shop.checkout(hold["hold_id"], buyer), 201)
    redis_client.flushall()
    # Another process "is rebuilding": this server must refuse until the marker is back.
    redis_client.set(keys.REBUILD_LOCK, "1", ex=30)
    refused = shop.hold(show, buyers[4], "FLUSH")
    assert refused.status_code == 503 and refused.json()["type"].endswith("unavailable")
    redis_client.delete(keys.REBUILD_LOCK)
    deadline = time.monotonic() + 60  # catches a hang only
    while (answer := shop.hold(show, buyers[4], "FLUSH", qty=4)).status_code == 503:
        assert time.monotonic() < deadline, "stock was never rebuilt"
        time.sleep(0.1)
    assert answer.status_code == 201, answer.text
    level = shop.stock("FLUSH")
    assert (level["sold"], level["held"], level["available"]) == (6, 4, 0)
    assert stored_sold(shop.database, "FLUSH") == (6, 10)
    assert shop.hold(show, buyers[5], "FLUSH").json()["type"].endswith("sold-out")


def test_no_click_during_a_rebuild_is_told_the_live_show_sells_nothing(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """While a flushed Redis is rebuilt SKU by SKU, clicks on the first SKU rebuilt are answered
    503 until it sells again, then 201: never 409 "not live", which a SKU ready again before
    its show's offer was back in its slot gave (200 items make that gap long)."""
    skus = [f"R{n:03d}" for n in range(200)]
    for sku in skus:
        shop.product(sku, stock=500)
    show = shop.show([{"sku": sku} for sku in skus])
    buyers = shop.viewers(1)
    shop.ok(shop.hold(show, buyers[0], skus[0], key="before"), 201)
    redis_client.flushall()
    answers = []
    deadline = time.monotonic() + 60  # catches a hang only
    while True:
        answer = shop.hold(show, buyers[0], skus[0], key=f"during-{len(answers)}")
        answers.append(answer.status_code)
        if answer.status_code != 503:
            break
        assert time.monotonic() < deadline, "stock was never rebuilt"
    assert answers[-1] == 201, answer.text
    assert 503 in answers, answers  # the click did meet the rebuild


def _args(data: Path, database_url: str) -> list[str]:
    """``serve`` options of the drills: the test provider, a crowd from one address."""
    return [
        "--data-dir",
        str(data),
        *(["--database-url", database_url] if database_url else []),
        "--log-level",
        "warning",
        "--payments",
        "test",
        *ONE_ADDRESS_ARGS,
    ]


def _setup(url: str, key: str, sku: str, stock: int) -> tuple[str, httpx.Client]:
    client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    client.post(
        "/api/products",
        json={
            "sku": sku,
            "title": sku,
            "price": {"amount": 500, "currency": "EUR"},
            "stock": stock,
        },
    ).raise_for_status()
    show = client.post("/api/shows", json={"title": "Drill", "host_name": "Mia"}).json()["id"]
    client.put(f"/api/shows/{show}/lineup", json=[{"sku": sku}]).raise_for_status()
    client.post(f"/api/shows/{show}/start").raise_for_status()
    return show, client


def _viewers(url: str, n: int) -> list[dict[str, str]]:
    answers = asyncio.run(
        burst(url, [("POST", "/api/viewers", {"nickname": f"v{i}"}, {}) for i in range(n)])
    )
    return [{"Authorization": f"Bearer {a.json()['token']}"} for a in answers]


def _check_store(database: Path | str, sku: str, level: dict[str, Any]) -> None:
    sold, on_hand = stored_sold(database, sku)
    assert level["sold"] == sold and level["on_hand"] == on_hand
    assert level["available"] + level["held"] + level["sold"] == level["on_hand"]
    assert sold <= on_hand
    with connect(database) as conn:
        in_flight = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE state IN ('pending', 'authorized')"
        ).fetchone()[0]
        # No money kept without a confirmed hold: every live charge belongs to a confirmed order.
        charged_unconfirmed = conn.execute(
            "SELECT COUNT(*) FROM test_payments p JOIN orders o ON o.id = p.order_id"
            " WHERE p.status IN ('authorized', 'captured') AND o.state != 'confirmed'"
        ).fetchone()[0]
    assert in_flight == 0 and charged_unconfirmed == 0


def test_kill_during_checkouts_recovers(spawn: Any, tmp_path: Path, database_url: str) -> None:
    """kill -9 in a burst of checkouts; after restart every order is final, none charged
    without a confirmed hold, and Redis's sold count equals the stored confirmed orders."""
    data = tmp_path / "drill"
    database = database_url or data / "livesale.db"
    proc = spawn(*_args(data, database_url))
    key = create_key(database_url or data)
    show, client = _setup(proc.url, key, "KILL", 60)
    buyers = _viewers(proc.url, 60)
    holds = asyncio.run(
        burst(
            proc.url,
            [
                (
                    "POST",
                    f"/api/shows/{show}/holds",
                    {"sku": "KILL", "qty": 1, "idempotency_key": "k"},
                    b,
                )
                for b in buyers
            ],
        )
    )
    pairs = [(h.json()["hold_id"], b) for h, b in zip(holds, buyers, strict=True)]

    async def checkouts_then_kill() -> None:
        tasks = [
            asyncio.ensure_future(
                burst(proc.url, [("POST", f"/api/holds/{hid}/checkout", CHECKOUT, b)])
            )
            for hid, b in pairs
        ]
        await asyncio.sleep(0.15)
        assert proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(checkouts_then_kill())
    proc.proc.wait()
    client.close()
    again = spawn(*_args(data, database_url), port=proc.port)
    with httpx.Client(base_url=again.url, timeout=30) as fresh:
        deadline = time.monotonic() + 60  # catches a hang only
        while True:
            with connect(database) as conn:
                left = conn.execute(
                    "SELECT COUNT(*) FROM orders WHERE state IN ('pending', 'authorized')"
                ).fetchone()[0]
            if not left:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        _check_store(database, "KILL", fresh.get("/api/stock/KILL").json())


def test_redis_killed_keeps_acknowledged_holds(
    spawn: Any, tmp_path: Path, database_url: str
) -> None:
    """Redis killed mid-show and restarted with the server (AOF): no acknowledged hold or
    paid order is lost."""
    data = tmp_path / "aof"
    database = database_url or data / "livesale.db"
    proc = spawn(*_args(data, database_url))
    key = create_key(database_url or data)
    show, client = _setup(proc.url, key, "AOF", 20)
    buyers = _viewers(proc.url, 8)
    holds = [
        client.post(
            f"/api/shows/{show}/holds",
            json={"sku": "AOF", "qty": 1, "idempotency_key": "k"},
            headers=b,
        ).json()
        for b in buyers
    ]
    for hold, buyer in list(zip(holds, buyers, strict=True))[:4]:
        client.post(
            f"/api/holds/{hold['hold_id']}/checkout", json=CHECKOUT, headers=buyer
        ).raise_for_status()
    time.sleep(1.5)  # appendfsync everysec: acknowledged writes reach the disk within a second
    redis_pid = int((data / "redis" / "redis.pid").read_text().strip())
    os.kill(redis_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{redis_pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.proc is not None
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait()
    client.close()
    again = spawn(*_args(data, database_url), port=proc.port)
    with httpx.Client(base_url=again.url, timeout=30) as fresh:
        level = fresh.get("/api/stock/AOF").json()
        assert (level["held"], level["sold"]) == (4, 4), level
        for hold, buyer in list(zip(holds, buyers, strict=True))[4:]:
            assert (
                fresh.get(f"/api/holds/{hold['hold_id']}", headers=buyer).json()["state"] == "held"
            )
        _check_store(database, "AOF", level)


def test_two_workers_check_out_into_one_store(
    spawn: Any, tmp_path: Path, database_url: str
) -> None:
    """``serve --workers 2`` on the store: a rush of holds and checkouts, each on its own
    connection, which the kernel spreads over both workers, sells exactly the stock, once per
    order, and the store of record agrees with Redis."""
    data = tmp_path / "workers"
    database = database_url or data / "livesale.db"
    proc = spawn("--workers", "2", *_args(data, database_url), wait=False)
    proc.wait_healthy(timeout=120)
    for worker in (0, 1):
        deadline = time.monotonic() + 120  # catches a hang only
        while not (data / "run" / f"worker-{worker}.sock").exists():
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
    key = create_key(database_url or data)
    show, client = _setup(proc.url, key, "RUSH", 30)
    buyers = _viewers(proc.url, 40)
    clicks = [
        ("POST", f"/api/shows/{show}/holds", {"sku": "RUSH", "qty": 1, "idempotency_key": "k"}, b)
        for b in buyers
    ]
    holds = asyncio.run(burst(proc.url, clicks))
    assert sorted(h.status_code for h in holds) == [201] * 30 + [409] * 10
    pairs = [
        (h.json()["hold_id"], b) for h, b in zip(holds, buyers, strict=True) if h.status_code == 201
    ]
    paid = asyncio.run(
        burst(proc.url, [("POST", f"/api/holds/{hid}/checkout", CHECKOUT, b) for hid, b in pairs])
    )
    assert [p.status_code for p in paid] == [201] * 30, [
        p.body for p in paid if p.status_code != 201
    ]
    assert len({p.json()["id"] for p in paid}) == 30
    _check_store(database, "RUSH", client.get("/api/stock/RUSH").json())
    with connect(database) as conn:
        orders = conn.execute("SELECT COUNT(*) FROM orders WHERE sku = 'RUSH'").fetchone()[0]
    assert orders == 30
    # Both workers took checkouts (the merged /metrics labels each sample with its worker).
    scraped = client.get("/metrics").text
    served = {
        worker
        for line in scraped.splitlines()
        if line.startswith("livesale_http_requests_total{") and "/checkout" in line
        for worker in ("0", "1")
        if f'worker="{worker}"' in line
    }
    assert served == {"0", "1"}, scraped
    client.close()
    assert proc.stop() == 0, proc.output()


def test_a_click_that_failed_before_taking_stock_can_be_sent_again(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """A buy click whose first step was made but whose second never ran (Redis refused the
    write in between) gives back what the first took: the same click, sent again, makes its
    hold instead of finding a claim with no hold behind it."""
    shop.product("AGAIN", stock=3)
    show = shop.show([{"sku": "AGAIN"}])
    buyer = shop.viewer()
    redis_client.set(keys.HOLD_SKUS, "not an index")  # the index write fails (WRONGTYPE)
    failed = shop.hold(show, buyer, "AGAIN", key="k1")
    assert failed.status_code == 500, failed.text
    redis_client.delete(keys.HOLD_SKUS)
    hold = shop.ok(shop.hold(show, buyer, "AGAIN", key="k1"), 201)
    assert hold["sku"] == "AGAIN"
    assert shop.stock("AGAIN")["held"] == 1
