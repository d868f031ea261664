"""Changes of on-hand keep the store of record (SQLite or PostgreSQL) and Redis in step:
imports, sets and adjusts racing buy clicks, refused or failing half-way, or cut off between
their two steps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis

from livesale import keys
from livesale.config import Settings
from livesale.lua import SOURCES, calls
from tests.catalogue.test_routes import assert_problem
from tests.conftest import LiveServer
from tests.orders.conftest import Shop, burst, wait_for
from tests.postgres import connect

HOT = [f"HOT-{n}" for n in range(5)]


def rows(n: int, stock: int, title: str = "Bulk") -> list[dict[str, Any]]:
    return [
        {
            "sku": f"BULK-{i:05d}",
            "title": f"{title} {i}",
            "price": {"amount": 990, "currency": "EUR"},
            "stock": stock,
        }
        for i in range(n)
    ]


def hot(stock: int) -> list[dict[str, Any]]:
    return [
        {"sku": sku, "title": sku, "price": {"amount": 1990, "currency": "EUR"}, "stock": stock}
        for sku in HOT
    ]


def stored_state(database: Path | str) -> tuple[dict[str, tuple[str, int]], int]:
    """Every product's title and on-hand in the store, and how many ledger rows there are."""
    with connect(database) as conn:
        products = {
            r[0]: (r[1], r[2]) for r in conn.execute("SELECT sku, title, on_hand FROM products")
        }
        (ledger,) = conn.execute("SELECT COUNT(*) FROM stock_ledger").fetchone()
    return products, int(ledger)


def redis_state(client: redis.Redis) -> dict[str, Any]:
    """Every stock hash in Redis, and the open change of on-hand counts."""
    found: dict[str, Any] = {}
    for key in client.scan_iter(match="ls:{*}:stock", count=1000):
        found[key.decode()] = client.hgetall(key)
    found[keys.STOCK_BATCH] = client.hgetall(keys.STOCK_BATCH)
    return found


def assert_agree(database: Path | str, client: redis.Redis) -> None:
    """Redis counts exactly the store's on-hand for every SKU, within its own invariant."""
    products, _ = stored_state(database)
    pipe = client.pipeline(transaction=False)
    for sku in products:
        pipe.hmget(keys.stock(sku), ["on_hand", "available", "held", "sold"])
    for (sku, (_, on_hand)), values in zip(products.items(), pipe.execute(), strict=True):
        level = [int(v or 0) for v in values]
        assert level[0] == on_hand, (sku, level, on_hand)
        assert level[1] + level[2] + level[3] == level[0] and min(level) >= 0, (sku, level)


async def test_buy_clicks_racing_large_imports_leave_both_stores_agreeing(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """Crowds hold and release while 3,005-row imports set stock, some refused because a
    hot item's new count falls below what the crowd holds: afterwards every SKU counts the
    same in Redis as in the database, and a rebuild from the database finds nothing to change."""
    shop.ok(shop.client.post("/api/products/import", json=rows(3000, 7) + hot(100)), 201)
    show = shop.show([{"sku": sku} for sku in HOT])
    buyers = shop.viewers(150)
    answers: list[int] = []

    async def imports() -> None:
        for n in range(6):
            body = rows(3000, 9 if n % 2 == 0 else 7) + hot(40 if n % 2 == 0 else 100)
            response = await asyncio.to_thread(shop.client.post, "/api/products/import", json=body)
            assert response.status_code in (201, 422), response.text
            answers.append(response.status_code)

    async def crowd() -> None:
        for n in range(8):
            made = await burst(
                shop.url,
                [
                    (
                        "POST",
                        f"/api/shows/{show}/holds",
                        {"sku": HOT[i % len(HOT)], "qty": 1, "idempotency_key": f"c{n}"},
                        headers,
                    )
                    for i, headers in enumerate(buyers)
                ],
            )
            assert {a.status_code for a in made} <= {201, 409}
            held = [
                (a.json()["hold_id"], buyers[i]) for i, a in enumerate(made) if a.status_code == 201
            ]
            if n % 2:  # every other round lets its holds go again
                await burst(shop.url, [("DELETE", f"/api/holds/{h}", None, b) for h, b in held])

    await asyncio.gather(imports(), crowd())
    assert len(answers) == 6
    assert_agree(shop.database, redis_client)
    assert shop.ok(shop.client.post("/api/stock/reconcile")) == []
    assert not redis_client.exists(keys.STOCK_BATCH)


def test_refused_import_changes_neither_store(shop: Shop, redis_client: redis.Redis) -> None:
    """An import refused for a repeated SKU, or because one row's stock would fall below what
    a buyer holds — found in Redis, after 3,000 other rows were checked — leaves every
    product, count and ledger in the database and Redis as it was."""
    shop.ok(shop.client.post("/api/products/import", json=rows(3000, 7) + hot(5)), 201)
    show = shop.show([{"sku": HOT[0]}])
    shop.ok(shop.hold(show, shop.viewer(), HOT[0], qty=3), 201)
    before = stored_state(shop.database), redis_state(redis_client)

    repeated = rows(3000, 9, "Renamed") + [rows(1, 1)[0]]
    problem = assert_problem(
        shop.client.post("/api/products/import", json=repeated), 422, "validation"
    )
    assert problem["errors"] == [
        {"index": 3000, "sku": "BULK-00000", "reason": "SKU repeats row 0"}
    ]
    assert (stored_state(shop.database), redis_state(redis_client)) == before

    below = rows(3000, 9, "Renamed") + [{**hot(2)[0]}]
    problem = assert_problem(
        shop.client.post("/api/products/import", json=below), 422, "validation"
    )
    assert problem["errors"] == [
        {"index": 3000, "sku": HOT[0], "reason": "on_hand 2 would be below the 3 held and 0 sold"}
    ]
    assert (stored_state(shop.database), redis_state(redis_client)) == before
    assert_agree(shop.database, redis_client)


#: Failures a test puts in the record itself, per engine: a ledger row that cannot be written
#: (the change fails inside its transaction, after its first Redis step), and one whose commit
#: fails (a deferred foreign key that points nowhere).
FAILURES: dict[str, str] = {}
FAILURES["sqlite"] = """
CREATE TRIGGER ledger_fails BEFORE INSERT ON stock_ledger WHEN NEW.reason = 'write-fails'
BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;
CREATE TABLE commit_fails (sku TEXT REFERENCES products(sku) DEFERRABLE INITIALLY DEFERRED);
CREATE TRIGGER ledger_commit_fails AFTER INSERT ON stock_ledger WHEN NEW.reason = 'commit-fails'
BEGIN INSERT INTO commit_fails VALUES ('NO-SUCH-SKU'); END;
"""
FAILURES["postgres"] = """
CREATE FUNCTION ledger_fails() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$;
CREATE TRIGGER ledger_fails BEFORE INSERT ON stock_ledger
    FOR EACH ROW WHEN (NEW.reason = 'write-fails') EXECUTE FUNCTION ledger_fails();
CREATE TABLE commit_fails (sku TEXT REFERENCES products(sku) DEFERRABLE INITIALLY DEFERRED);
CREATE FUNCTION ledger_commit_fails() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO commit_fails VALUES ('NO-SUCH-SKU'); RETURN NEW; END $$;
CREATE TRIGGER ledger_commit_fails AFTER INSERT ON stock_ledger
    FOR EACH ROW WHEN (NEW.reason = 'commit-fails') EXECUTE FUNCTION ledger_commit_fails();
"""


@pytest.mark.parametrize("reason", ["write-fails", "commit-fails"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/stock/HOT-0", {"on_hand": 4}),
        ("PUT", "/api/stock/HOT-0", {"on_hand": 30}),
        ("POST", "/api/stock/HOT-0/adjust", {"delta": -6}),
        ("POST", "/api/stock/HOT-0/adjust", {"delta": 6}),
    ],
    ids=["set-down", "set-up", "adjust-down", "adjust-up"],
)
def test_failed_stock_change_changes_neither_store(
    shop: Shop,
    redis_client: redis.Redis,
    store: str,
    reason: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    """A set or adjust whose database write or commit fails after its first Redis step (which
    took units off sale when the count falls) is a 500, and leaves both stores as they were:
    counts, held units and the ledger."""
    shop.ok(shop.client.post("/api/products/import", json=hot(10)), 201)
    show = shop.show([{"sku": HOT[0]}])
    shop.ok(shop.hold(show, shop.viewer(), HOT[0], qty=2), 201)
    with connect(shop.database) as conn:
        conn.executescript(FAILURES[store])
    before = stored_state(shop.database), redis_state(redis_client)
    response = shop.client.request(method, path, json={**body, "reason": reason})
    assert_problem(response, 500, "store")
    assert (stored_state(shop.database), redis_state(redis_client)) == before
    assert shop.stock(HOT[0]) == {
        "sku": HOT[0],
        "on_hand": 10,
        "available": 8,
        "held": 2,
        "sold": 0,
    }
    ok = shop.client.request(method, path, json={**body, "reason": "count"})
    assert ok.status_code == 200, ok.text
    assert_agree(shop.database, redis_client)


@pytest.mark.parametrize(
    ("target", "committed"),
    [(25, True), (3, False), (3, True)],
    ids=["up-committed", "down-not-committed", "down-committed"],
)
def test_change_cut_off_between_its_steps_is_reconciled_at_start(
    settings: Settings, redis_client: redis.Redis, target: int, committed: bool
) -> None:
    """A process that died between the two steps of a change (after its commit, or
    before it) left Redis counting no more than the database and its change open: once the change's
    lease is over, the next server rebuilds stock from the database, and changes work again."""
    first = LiveServer(settings).start()
    with first.client(headers=first.merchant) as merchant:
        assert merchant.post("/api/products/import", json=hot(10)).status_code == 201
    first.stop()
    # The dead process's first step: its change opened, its row prepared.
    lock = calls.stock_lock(step="open", change="sb_dead", lease_ms=500)
    assert redis_client.eval(SOURCES["stock_lock"], len(lock.keys), *lock.keys, *lock.args) == b"ok"
    row = calls.stock_set(step="prepare", sku=HOT[0], target=target, before=10)
    assert redis_client.eval(SOURCES["stock_set"], len(row.keys), *row.keys, *row.args) == [b"ok"]
    if committed:
        with connect(settings.database) as conn:
            conn.execute("UPDATE products SET on_hand = ? WHERE sku = ?", (target, HOT[0]))
    expected = target if committed else 10
    assert int(redis_client.hget(keys.stock(HOT[0]), "on_hand") or 0) <= expected

    second = LiveServer(settings, api_key=first.api_key).start()
    try:
        with second.client(headers=second.merchant) as merchant:
            wait_for(lambda: not redis_client.exists(keys.STOCK_BATCH), 30)
            assert_agree(settings.database, redis_client)
            assert merchant.get(f"/api/stock/{HOT[0]}").json()["on_hand"] == expected
            assert merchant.put(f"/api/stock/{HOT[0]}", json={"on_hand": 12}).status_code == 200
            assert_agree(settings.database, redis_client)
    finally:
        second.stop()


def test_stock_change_while_stock_is_rebuilt_is_refused(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """While stock is being rebuilt a stock change is a 503 with Retry-After and changes
    nothing in either store."""
    shop.ok(shop.client.post("/api/products/import", json=hot(10)), 201)
    redis_client.set(keys.REBUILD_LOCK, "1", ex=60)  # a rebuild elsewhere holds the lock
    redis_client.delete(keys.STOCK_READY)
    try:
        before = stored_state(shop.database), redis_state(redis_client)
        response = shop.client.put(f"/api/stock/{HOT[0]}", json={"on_hand": 4})
        assert_problem(response, 503, "unavailable")
        assert response.headers["retry-after"] == "1"
        assert (stored_state(shop.database), redis_state(redis_client)) == before
    finally:
        redis_client.delete(keys.REBUILD_LOCK)
    wait_for(lambda: redis_client.exists(keys.STOCK_READY), 30)
    assert_agree(shop.database, redis_client)
