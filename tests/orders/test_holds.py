"""Holds through HTTP: the flash sale, idempotency, limits, expiry and refusals."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from livesale.config import Settings
from tests.orders.conftest import CHECKOUT as CHECKOUT_BODY
from tests.orders.conftest import Shop, burst


def test_flash_sale_never_oversells(shop: Shop) -> None:
    """1,000 concurrent buyers on 40 units: exactly 40 holds, 960 sold-out answers."""
    shop.product("LIP-RED", stock=40)
    show = shop.show([{"sku": "LIP-RED"}])
    buyers = shop.viewers(1000)
    answers = asyncio.run(
        burst(
            shop.url,
            [
                ("POST", f"/api/shows/{show}/holds", {"sku": "LIP-RED", "qty": 1, "idempotency_key": "click"}, h)
                for h in buyers
            ],
        )
    )
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 40, 409: 960}
    sold_out = [a.json() for a in answers if a.status_code == 409]
    assert all(p["type"].endswith("sold-out") and p["available"] == 0 for p in sold_out)
    assert len({a.json()["hold_id"] for a in answers if a.status_code == 201}) == 40
    assert shop.stock("LIP-RED") == {"sku": "LIP-RED", "on_hand": 40, "available": 0, "held": 40, "sold": 0}
    winners = [(a.json()["hold_id"], h) for a, h in zip(answers, buyers) if a.status_code == 201]
    paid = asyncio.run(
        burst(shop.url, [("POST", f"/api/holds/{hid}/checkout", CHECKOUT_BODY, h) for hid, h in winners])
    )
    assert [p.status_code for p in paid] == [201] * 40
    assert shop.stock("LIP-RED")["sold"] == 40 == shop.sold_in_db("LIP-RED")
