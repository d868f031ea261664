"""Holds expire on Redis's clock and their units return to ``available``."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from livesale import keys
from livesale.config import Settings
from livesale.lua import SOURCES, calls
from tests.orders.conftest import Shop


@pytest.fixture
def keep_finished() -> int:
    return 600


@pytest.fixture
def settings(settings: Settings, keep_finished: int) -> Settings:
    return replace(settings, hold_seconds=1, keep_finished_seconds=keep_finished)


def test_expired_hold_returns_stock(shop: Shop) -> None:
    """A 1 s hold expires: its stock is back in ``available``, and it cannot be paid."""
    shop.product("GLOSS", stock=2)
    show = shop.show([{"sku": "GLOSS"}])
    buyer = shop.viewer()
    hold = shop.ok(shop.hold(show, buyer, "GLOSS", qty=2), 201)
    assert shop.stock("GLOSS")["held"] == 2
    deadline = time.monotonic() + 60  # catches a hang only; the hold itself lasts 1 s
    while shop.stock("GLOSS")["available"] != 2:
        assert time.monotonic() < deadline, "hold did not expire"
        time.sleep(0.1)
    assert (
        shop.client.get(f"/api/holds/{hold['hold_id']}", headers=buyer).json()["state"] == "expired"
    )
    late = shop.checkout(hold["hold_id"], buyer)
    assert late.status_code == 409
    assert shop.sold_in_db("GLOSS") == 0


def test_payment_after_expiry_is_voided(shop: Shop) -> None:
    """A payment that completes after its hold expired is voided: no sale, no money kept."""
    from tests.orders.conftest import checkout_body

    shop.product("SLOW", stock=1)
    show = shop.show([{"sku": "SLOW"}])
    buyer = shop.viewer()
    hold = shop.ok(shop.hold(show, buyer, "SLOW"), 201)
    answer = shop.checkout(hold["hold_id"], buyer, checkout_body("tok_slow"))
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["type"].endswith("hold-expired") and problem["payment_status"] == "voided"
    with shop.db() as conn:
        order = conn.execute("SELECT state, payment_status FROM orders").fetchone()
        payment = conn.execute("SELECT status FROM test_payments").fetchone()
    assert tuple(order) == ("expired", "voided") and payment[0] == "voided"
    assert shop.stock("SLOW") == {"sku": "SLOW", "on_hand": 1, "available": 1, "held": 0, "sold": 0}


@pytest.mark.parametrize("keep_finished", [1])
def test_finished_holds_are_forgotten_after_a_while(shop: Shop, redis_client: redis.Redis) -> None:
    """A released hold stays readable for ``keep_finished_seconds``, then the sweeper forgets
    it, even when no other hold is left on the SKU."""
    shop.product("BALM", stock=3)
    show = shop.show([{"sku": "BALM"}])
    buyer = shop.viewer()
    hold = shop.ok(shop.hold(show, buyer, "BALM", key="once"), 201)
    path = f"/api/holds/{hold['hold_id']}"
    assert shop.ok(shop.client.delete(path, headers=buyer))["state"] == "released"
    assert shop.ok(shop.client.get(path, headers=buyer))["state"] == "released"
    deadline = time.monotonic() + 60  # catches a hang only
    while shop.client.get(path, headers=buyer).status_code != 404:
        assert time.monotonic() < deadline, "the finished hold was never forgotten"
        time.sleep(0.1)
    assert not redis_client.exists(keys.holds("BALM"), keys.holds_done("BALM"))
    assert shop.stock("BALM") == {"sku": "BALM", "on_hand": 3, "available": 3, "held": 0, "sold": 0}
    # The sweepers' index keeps the SKU until no hold made under its score can be live ...
    score = redis_client.zscore(keys.HOLD_SKUS, "BALM")
    assert score is not None and score > time.time() * 1000
    # ... and lets it go once that time is past: the index holds only SKUs that may have holds.
    redis_client.zadd(keys.HOLD_SKUS, {"BALM": 1})
    while redis_client.zscore(keys.HOLD_SKUS, "BALM") is not None:
        assert time.monotonic() < deadline, "the idle SKU never left the sweepers' index"
        time.sleep(0.1)


def test_the_index_keeps_a_sku_a_click_wrote_again(redis_client: redis.Redis) -> None:
    """The sweepers let a SKU go only at the score they read: a click that wrote the SKU
    there again since keeps it in the round."""
    redis_client.zadd(keys.HOLD_SKUS, {"LIP": 5, "BALM": 7})
    run = redis_client.register_script(SOURCES["unindex"])
    call = calls.unindex(sku="LIP", score=4)
    assert run(keys=call.keys, args=call.args) == 0
    call = calls.unindex(sku="LIP", score=5)
    assert run(keys=call.keys, args=call.args) == 1
    assert redis_client.zrange(keys.HOLD_SKUS, 0, -1) == [b"BALM"]
