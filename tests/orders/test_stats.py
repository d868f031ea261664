"""The studio's live panel: units, revenue and live holds of one show."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.orders.conftest import Shop, checkout_body


def test_stats_count_confirmed_orders_and_live_holds(shop: Shop, server: LiveServer) -> None:
    """Units and revenue come from confirmed orders of real money (test money only when
    asked for); live holds from this show's holds."""
    shop.product("A", 10, amount=1500)
    shop.product("B", 10, amount=900)
    show_id = shop.show([{"sku": "A"}, {"sku": "B", "limit_per_buyer": 5}])
    other = shop.show([{"sku": "B"}])
    buyer = shop.viewer("ann")
    hold = shop.ok(shop.hold(show_id, buyer, "A", qty=2, key="a1"), 201)
    assert shop.checkout(hold["hold_id"], buyer).status_code == 201
    hold = shop.ok(shop.hold(show_id, buyer, "A", qty=1, key="a2"), 201)
    assert (
        shop.checkout(hold["hold_id"], buyer, checkout_body(provider="manual")).status_code == 201
    )
    shop.ok(shop.hold(show_id, shop.viewer("bo"), "B", qty=3, key="b1"), 201)
    shop.ok(shop.hold(other, shop.viewer("cy"), "B", qty=1, key="c1"), 201)
    stats = shop.ok(shop.client.get(f"/api/shows/{show_id}/stats"))
    assert stats == {
        "show_id": show_id,
        "orders": 1,
        "units": 1,
        "revenue": [{"amount": 1500, "currency": "EUR"}],
        "live_holds": 1,
        "held_units": 3,
        "test_orders": 1,
        "includes_test": False,
    }
    both = shop.ok(shop.client.get(f"/api/shows/{show_id}/stats", params={"test": "include"}))
    assert (both["orders"], both["units"], both["revenue"]) == (
        2,
        3,
        [{"amount": 4500, "currency": "EUR"}],
    )
    assert both["includes_test"] is True
    assert shop.client.get(f"/api/shows/{show_id}/stats", params={"test": "x"}).status_code == 422


def test_stats_need_merchant_or_host(shop: Shop, server: LiveServer) -> None:
    """The host token may read the panel; a viewer may not, and nobody without a token."""
    shop.product("A", 1)
    created = shop.ok(shop.client.post("/api/shows", json={"title": "S", "host_name": "H"}), 201)
    path = f"{server.url}/api/shows/{created['id']}/stats"
    host = {"Authorization": f"Bearer {created['host_token']}"}
    assert httpx.get(path, headers=host).json()["units"] == 0
    assert httpx.get(path, headers=shop.viewer()).status_code == 403
    assert httpx.get(path).status_code == 401
