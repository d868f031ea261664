"""Cancel and refund with the manual and test providers: the units come back on sale, once,
with a ledger line and a webhook, and stock agrees with SQLite through a Redis rebuild."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import redis

from livesale.config import Settings
from livesale.orders.state import SOLD_UNITS_SQL
from tests.orders.conftest import Receiver, Shop, checkout_body, wait_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, grace_seconds=1)


def buy(
    shop: Shop, show: str, sku: str, qty: int, provider: str = "test", name: str = "ada"
) -> Any:
    buyer = shop.viewer(name)
    hold = shop.ok(shop.hold(show, buyer, sku, qty=qty), 201)
    token = "tok_visa" if provider == "test" else ""
    return shop.ok(
        shop.checkout(hold["hold_id"], buyer, checkout_body(token, provider=provider)), 201
    )


def sqlite_sold(shop: Shop, sku: str) -> int:
    with shop.db() as conn:
        row = conn.execute(
            f"SELECT COALESCE(SUM({SOLD_UNITS_SQL}), 0) FROM orders WHERE sku = ?", (sku,)
        ).fetchone()
    return int(row[0])


def events(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in receiver.received]


def test_cancel_a_manual_order_nobody_paid(shop: Shop, receiver: Receiver) -> None:
    """A manual order stays due until marked paid or cancelled; cancelling it puts its units
    back on sale with a ledger line and an ``order.canceled`` webhook."""
    receiver.failures_left = 0
    shop.ok(
        shop.client.put("/api/webhook", json={"url": f"http://127.0.0.1:{receiver.server_port}/h"})
    )
    shop.product("TEA", 6)
    show = shop.show([{"sku": "TEA"}])
    order = buy(shop, show, "TEA", 2, provider="manual")
    assert (order["state"], order["payment_status"], order["test"]) == ("confirmed", "due", False)
    cancelled = shop.ok(
        shop.client.post(f"/api/orders/{order['id']}/cancel", json={"reason": "no transfer"})
    )
    assert (cancelled["state"], cancelled["payment_status"], cancelled["reason"]) == (
        "cancelled",
        "voided",
        "no transfer",
    )
    assert shop.stock("TEA") == {"sku": "TEA", "on_hand": 6, "available": 6, "held": 0, "sold": 0}
    assert sqlite_sold(shop, "TEA") == 0
    ledger = shop.ok(shop.client.get("/api/stock/TEA/ledger"))
    assert ledger[0]["delta"] == 0 and order["id"] in ledger[0]["reason"]
    assert shop.client.post(f"/api/orders/{order['id']}/paid").status_code == 409
    got = wait_for(lambda: [e for e in events(receiver) if e["event"] == "order.canceled"])
    assert got[0]["data"]["id"] == order["id"] and "test" not in got[0]
    # The buyer may buy again: the limit counts what they keep, not what came back.
    assert buy(shop, show, "TEA", 6, provider="manual", name="ada2")["qty"] == 6


def test_cancel_unpaid_cancels_only_due_manual_orders(shop: Shop) -> None:
    shop.product("JAM", 10)
    show = shop.show([{"sku": "JAM"}])
    due = [buy(shop, show, "JAM", 1, provider="manual", name=f"m{i}") for i in range(3)]
    shop.ok(shop.client.post(f"/api/orders/{due[0]['id']}/paid"))
    card = buy(shop, show, "JAM", 2, provider="test", name="card")
    cancelled = shop.ok(shop.client.post(f"/api/shows/{show}/orders/cancel-unpaid"))
    assert sorted(o["id"] for o in cancelled) == sorted(o["id"] for o in due[1:])
    assert all(o["state"] == "cancelled" for o in cancelled)
    states = {o["id"]: o["state"] for o in shop.ok(shop.client.get("/api/orders"))}
    assert states[due[0]["id"]] == states[card["id"]] == "confirmed"
    assert shop.stock("JAM")["sold"] == 3 == sqlite_sold(shop, "JAM")
    assert shop.client.post("/api/shows/sh_nope/orders/cancel-unpaid").status_code == 404


def test_test_money_is_flagged_and_refunds_return_units(shop: Shop, receiver: Receiver) -> None:
    """Orders, webhooks and refunds of the test provider carry ``test: true``; refunds after
    capture return units, each once, and the refund key is never charged twice."""
    receiver.failures_left = 0
    shop.ok(
        shop.client.put("/api/webhook", json={"url": f"http://127.0.0.1:{receiver.server_port}/h"})
    )
    shop.product("OIL", 8, amount=1000)
    show = shop.show([{"sku": "OIL"}])
    order = buy(shop, show, "OIL", 4)
    assert order["test"] is True
    paid = wait_for(lambda: [e for e in events(receiver) if e["event"] == "order.paid"])
    assert paid[0]["test"] is True and paid[0]["data"]["test"] is True
    shop.end(show)
    wait_for(
        lambda: (
            shop.ok(shop.client.get(f"/api/orders/{order['id']}"))["payment_status"] == "captured"
        )
    )
    ready = wait_for(lambda: [e for e in events(receiver) if e["event"] == "show.fulfilment_ready"])
    assert ready[0]["test"] is True
    path = f"/api/orders/{order['id']}/refund"
    first = shop.ok(shop.client.post(path, json={"qty": 1, "idempotency_key": "r1"}))
    again = shop.ok(shop.client.post(path, json={"qty": 1, "idempotency_key": "r1"}))
    assert first["returned_qty"] == again["returned_qty"] == 1
    assert shop.client.post(path, json={"qty": 2, "idempotency_key": "r1"}).status_code == 422
    assert shop.stock("OIL")["available"] == 5 and sqlite_sold(shop, "OIL") == 3
    rest = shop.ok(shop.client.post(path))
    assert (rest["state"], rest["returned_qty"], rest["refunded"]["amount"]) == (
        "refunded",
        4,
        4000,
    )
    with shop.db() as conn:
        charged = conn.execute("SELECT status, refunded FROM test_payments").fetchone()
    assert tuple(charged) == ("refunded", 4000)
    assert shop.stock("OIL") == {"sku": "OIL", "on_hand": 8, "available": 8, "held": 0, "sold": 0}
    refunds = wait_for(lambda: [e for e in events(receiver) if e["event"] == "order.refunded"])
    assert all(e["test"] is True for e in refunds)
    wait_for(lambda: len([e for e in events(receiver) if e["event"] == "order.refunded"]) == 2)
    assert shop.client.post(path).status_code == 409


def test_refusals_change_nothing(shop: Shop) -> None:
    shop.product("SOAP", 5)
    show = shop.show([{"sku": "SOAP"}])
    order = buy(shop, show, "SOAP", 2)
    base = f"/api/orders/{order['id']}"
    assert shop.client.post(f"{base}/refund").status_code == 409  # authorized, not captured
    assert shop.client.post(f"{base}/refund", json={"qty": 0}).status_code == 422
    assert shop.client.post(f"{base}/cancel", json={"bogus": 1}).status_code == 422
    assert shop.client.post("/api/orders/or_nope/cancel").status_code == 404
    assert shop.client.post(f"{base}/cancel", headers={"Authorization": ""}).status_code == 401
    viewer = shop.viewer("eve")
    assert shop.client.post(f"{base}/cancel", headers=viewer).status_code == 403
    assert shop.stock("SOAP")["sold"] == 2
    assert shop.ok(shop.client.get(base))["state"] == "confirmed"


def test_a_redis_rebuild_after_returns_neither_loses_nor_repeats_them(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """Stock rebuilt from SQLite after Redis lost its data counts cancelled and refunded
    units as back on sale, and returning them again moves nothing."""
    shop.product("WAX", 10)
    show = shop.show([{"sku": "WAX"}])
    kept = buy(shop, show, "WAX", 3, name="k")
    gone = buy(shop, show, "WAX", 2, name="g")
    shop.ok(shop.client.post(f"/api/orders/{gone['id']}/cancel"))
    assert shop.stock("WAX")["sold"] == 3
    redis_client.flushall()
    wait_for(lambda: shop.client.get("/api/stock/WAX").json().get("on_hand") == 10)
    level = shop.stock("WAX")
    assert (level["sold"], level["available"]) == (3, 7) == (sqlite_sold(shop, "WAX"), 7)
    # Cancelling again (a retry) moves nothing.
    shop.ok(shop.client.post(f"/api/orders/{gone['id']}/cancel"))
    assert shop.stock("WAX")["available"] == 7
    assert kept["state"] == "confirmed"


def test_a_return_interrupted_before_sqlite_heard_of_it_is_finished_once(
    shop: Shop, redis_client: redis.Redis, server: Any
) -> None:
    """The units went back in Redis but the process died before SQLite recorded it: the
    return is finished at the next start without moving them twice."""
    shop.product("INK", 5)
    show = shop.show([{"sku": "INK"}])
    order = buy(shop, show, "INK", 2)
    shop.ok(shop.client.post(f"/api/orders/{order['id']}/cancel"))
    assert shop.stock("INK")["available"] == 5
    # What the database holds if the process died between the script and its own write.
    with shop.db() as conn:
        conn.execute("UPDATE orders SET restocked_qty = 0 WHERE id = ?", (order["id"],))
    server.stop()
    server.start()
    shop.client.base_url = server.url
    wait_for(lambda: shop.db().execute("SELECT restocked_qty FROM orders").fetchone()[0] == 2)
    assert shop.stock("INK") == {"sku": "INK", "on_hand": 5, "available": 5, "held": 0, "sold": 0}
