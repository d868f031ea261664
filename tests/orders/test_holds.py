"""Holds through HTTP: the flash sale, idempotency, limits, expiry and refusals."""

from __future__ import annotations

import asyncio
from collections import Counter

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
                (
                    "POST",
                    f"/api/shows/{show}/holds",
                    {"sku": "LIP-RED", "qty": 1, "idempotency_key": "click"},
                    h,
                )
                for h in buyers
            ],
        )
    )
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 40, 409: 960}
    sold_out = [a.json() for a in answers if a.status_code == 409]
    assert all(p["type"].endswith("sold-out") and p["available"] == 0 for p in sold_out)
    assert len({a.json()["hold_id"] for a in answers if a.status_code == 201}) == 40
    assert shop.stock("LIP-RED") == {
        "sku": "LIP-RED",
        "on_hand": 40,
        "available": 0,
        "held": 40,
        "sold": 0,
    }
    winners = [
        (a.json()["hold_id"], h)
        for a, h in zip(answers, buyers, strict=True)
        if a.status_code == 201
    ]
    paid = asyncio.run(
        burst(
            shop.url,
            [("POST", f"/api/holds/{hid}/checkout", CHECKOUT_BODY, h) for hid, h in winners],
        )
    )
    assert [p.status_code for p in paid] == [201] * 40
    assert shop.stock("LIP-RED")["sold"] == 40 == shop.sold_in_db("LIP-RED")


def test_retry_storm_reserves_once(shop: Shop) -> None:
    """50 concurrent requests with one idempotency key give one hold, the same to all."""
    shop.product("PAL-01", stock=10)
    show = shop.show([{"sku": "PAL-01"}])
    buyer = shop.viewer()
    body = {"sku": "PAL-01", "qty": 2, "idempotency_key": "click-1"}
    path = f"/api/shows/{show}/holds"
    answers = asyncio.run(burst(shop.url, [("POST", path, body, buyer)] * 50))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["hold_id"] for a in answers}) == 1
    assert shop.stock("PAL-01")["held"] == 2
    other = shop.hold(show, buyer, "PAL-01", qty=3, key="click-1")
    assert other.status_code == 409
    assert other.json()["type"].endswith("idempotency-mismatch")
    assert shop.stock("PAL-01")["held"] == 2


def test_retry_storm_on_a_sold_out_item_is_sold_out_for_every_retry(shop: Shop) -> None:
    """50 concurrent requests with one key for an item another buyer just took: each is
    answered sold out (the first's refusal gives its claim back; the retries waiting for its
    hold are clicks of their own then), none "no such hold"."""
    shop.product("PAL-02", stock=1)
    show = shop.show([{"sku": "PAL-02"}])
    shop.ok(shop.hold(show, shop.viewer("first"), "PAL-02", key="mine"), 201)
    buyer = shop.viewer()
    body = {"sku": "PAL-02", "qty": 1, "idempotency_key": "click-1"}
    answers = asyncio.run(burst(shop.url, [("POST", f"/api/shows/{show}/holds", body, buyer)] * 50))
    assert {a.status_code for a in answers} == {409}
    assert all(a.json()["type"].endswith("sold-out") for a in answers)


def test_limit_holds_under_concurrency(shop: Shop) -> None:
    """A buyer limited to 3 gets exactly 3 units from 20 concurrent clicks; bought counts."""
    shop.product("SER-01", stock=100)
    show = shop.show([{"sku": "SER-01", "limit_per_buyer": 3}])
    buyer = shop.viewer()
    path = f"/api/shows/{show}/holds"
    answers = asyncio.run(
        burst(
            shop.url,
            [
                ("POST", path, {"sku": "SER-01", "qty": 1, "idempotency_key": f"c{i}"}, buyer)
                for i in range(20)
            ],
        )
    )
    assert Counter(a.status_code for a in answers) == {201: 3, 409: 17}
    assert all(a.json()["type"].endswith("/limit") for a in answers if a.status_code == 409)
    first = next(a.json()["hold_id"] for a in answers if a.status_code == 201)
    assert shop.checkout(first, buyer).status_code == 201
    assert shop.hold(show, buyer, "SER-01", key="again").json()["type"].endswith("/limit")
    assert shop.hold(show, shop.viewer(), "SER-01", qty=3).status_code == 201
    assert shop.stock("SER-01") == {
        "sku": "SER-01",
        "on_hand": 100,
        "available": 94,
        "held": 5,
        "sold": 1,
    }


def test_refusals_change_nothing(shop: Shop) -> None:
    """Malformed, unauthorised, off-line-up and not-live clicks are refused; stock untouched."""
    shop.product("EYE-01", stock=5)
    shop.product("EYE-02", stock=5)
    show = shop.show([{"sku": "EYE-01"}])
    buyer = shop.viewer()
    path = f"/api/shows/{show}/holds"
    cases = [
        ({"sku": "EYE-01", "qty": 0, "idempotency_key": "a"}, buyer, 422),
        ({"sku": "EYE-01", "qty": 100, "idempotency_key": "a"}, buyer, 422),
        ({"sku": "EYE-01", "qty": 1}, buyer, 422),
        ({"sku": "EYE-01", "qty": 1, "idempotency_key": "a"}, {}, 401),
        (
            {"sku": "EYE-01", "qty": 1, "idempotency_key": "a"},
            {"Authorization": "Bearer v1.forged.sig"},
            403,
        ),
        ({"sku": "EYE-02", "qty": 1, "idempotency_key": "a"}, buyer, 409),
    ]
    for body, headers, status in cases:
        answer = shop.client.post(path, json=body, headers={"Authorization": "", **headers})
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    raw = shop.client.post(
        path, content=b"{nope", headers={**buyer, "Content-Type": "application/json"}
    )
    assert raw.status_code == 400
    scheduled = shop.show([{"sku": "EYE-01"}], start=False)
    refused = shop.hold(scheduled, buyer, "EYE-01")
    assert refused.status_code == 409 and refused.json()["type"].endswith("invalid-transition")
    assert shop.stock("EYE-01")["available"] == 5
    assert shop.stock("EYE-02")["available"] == 5


def test_release_returns_stock_to_its_owner_only(shop: Shop) -> None:
    """Only the hold's viewer may release it; releasing gives the units back once."""
    shop.product("BRU-01", stock=3)
    show = shop.show([{"sku": "BRU-01", "price": {"amount": 990, "currency": "EUR"}}])
    buyer = shop.viewer()
    hold = shop.ok(shop.hold(show, buyer, "BRU-01", qty=2), 201)
    assert hold["price"] == {"amount": 990, "currency": "EUR"}
    assert hold["total"] == {"amount": 1980, "currency": "EUR"}
    assert (
        shop.client.delete(f"/api/holds/{hold['hold_id']}", headers=shop.viewer("x")).status_code
        == 403
    )
    assert shop.client.delete(f"/api/holds/{hold['hold_id']}", headers=buyer).status_code == 200
    assert shop.client.delete(f"/api/holds/{hold['hold_id']}", headers=buyer).status_code == 409
    assert shop.stock("BRU-01") == {
        "sku": "BRU-01",
        "on_hand": 3,
        "available": 3,
        "held": 0,
        "sold": 0,
    }
