"""The buyer's page hears what happens to their order: a cancel reaches their room socket,
and only theirs; everyone sees the units come back."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.room.conftest import Connect, ShowSetup, new_viewer


async def test_a_cancel_reaches_the_buyer_and_stock_reaches_everyone(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    sku = show.skus[0]
    _, token = new_viewer(server.url, "ada")
    buyer = {"Authorization": f"Bearer {token}"}
    hold = httpx.post(
        f"{server.url}/api/shows/{show.id}/holds",
        json={"sku": sku, "qty": 2, "idempotency_key": "k"},
        headers=buyer,
    ).json()
    order = httpx.post(
        f"{server.url}/api/holds/{hold['hold_id']}/checkout",
        json={
            "payment": {"provider": "manual"},
            "shipping": {"name": "Ada", "address": "1 Road", "email": "ada@example.com"},
        },
        headers=buyer,
    ).json()
    mine = await connect(show, token)
    other = await connect(show, new_viewer(server.url, "bo")[1])
    cancelled = httpx.post(f"{server.url}/api/orders/{order['id']}/cancel", headers=server.merchant)
    assert cancelled.status_code == 200, cancelled.text
    told = await mine.expect("order", lambda m: m["order"]["state"] == "cancelled")
    assert told["order"]["id"] == order["id"] and told["order"]["returned_qty"] == 2
    await other.expect("stock", lambda m: {"sku": sku, "available": 20} in m["items"])
    assert not [m for m in other.seen if m["type"] == "order"]
