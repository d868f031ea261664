"""Checkout through HTTP: providers, declines, timeouts, shipping, manual payment."""

from __future__ import annotations

from tests.orders.conftest import Shop, checkout_body


def _hold(shop: Shop, sku: str = "LIP-01", stock: int = 5) -> tuple[str, dict[str, str], str]:
    shop.product(sku, stock=stock)
    show = shop.show([{"sku": sku}])
    buyer = shop.viewer("ada")
    return show, buyer, shop.ok(shop.hold(show, buyer, sku), 201)["hold_id"]


def test_checkout_confirms_and_is_idempotent(shop: Shop) -> None:
    """tok_visa: order confirmed, units sold, money authorized; a second call returns it."""
    _, buyer, hold_id = _hold(shop)
    order = shop.ok(shop.checkout(hold_id, buyer), 201)
    assert (order["state"], order["payment_status"], order["qty"]) == ("confirmed", "authorized", 1)
    assert order["total"] == {"amount": 1990, "currency": "EUR"}
    again = shop.ok(shop.checkout(hold_id, buyer), 200)
    assert again["id"] == order["id"]
    assert shop.stock("LIP-01")["sold"] == 1 == shop.sold_in_db("LIP-01")
    assert shop.checkout(hold_id, shop.viewer("eve")).status_code == 403


def test_decline_keeps_the_hold_for_another_try(shop: Shop) -> None:
    """tok_decline: 402, the hold stays held; a retry with a good card succeeds."""
    _, buyer, hold_id = _hold(shop)
    declined = shop.checkout(hold_id, buyer, checkout_body("tok_decline"))
    assert declined.status_code == 402 and declined.json()["type"].endswith("payment-declined")
    assert shop.stock("LIP-01")["held"] == 1
    order = shop.ok(shop.checkout(hold_id, buyer), 201)
    assert order["state"] == "confirmed"
    with shop.db() as conn:
        states = sorted(r[0] for r in conn.execute("SELECT state FROM orders"))
    assert states == ["confirmed", "declined"]


def test_timeout_is_retried_without_double_charge(shop: Shop) -> None:
    """tok_timeout: the lost answer is retried with the same key; one charge only."""
    _, buyer, hold_id = _hold(shop)
    order = shop.ok(shop.checkout(hold_id, buyer, checkout_body("tok_timeout")), 201)
    assert order["payment_status"] == "authorized"
    with shop.db() as conn:
        charges = conn.execute("SELECT COUNT(*), SUM(amount) FROM test_payments").fetchone()
        log = [r[0] for r in conn.execute("SELECT outcome FROM payment_log ORDER BY id")]
    assert tuple(charges) == (1, 1990)
    assert log == ["timeout #1", "authorized"]


def test_shipping_and_payment_are_validated(shop: Shop) -> None:
    """Missing or malformed shipping, unknown provider or token: 422, no order written."""
    _, buyer, hold_id = _hold(shop)
    bad = [
        checkout_body(email="not-an-email"),
        checkout_body(name="   "),
        checkout_body(address=""),
        checkout_body("tok_bogus"),
        checkout_body(provider="bitcoin"),
        {"payment": {"provider": "test", "token": "tok_visa"}},
    ]
    for body in bad:
        assert shop.checkout(hold_id, buyer, body).status_code == 422, body
    with shop.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    assert shop.stock("LIP-01")["held"] == 1


def test_manual_payment_is_due_until_marked_paid(shop: Shop) -> None:
    """manual: confirmed with payment due; the merchant marks it paid, once."""
    _, buyer, hold_id = _hold(shop)
    order = shop.ok(shop.checkout(hold_id, buyer, checkout_body("", provider="manual")), 201)
    assert (order["state"], order["payment_status"]) == ("confirmed", "due")
    paid = shop.ok(shop.client.post(f"/api/orders/{order['id']}/paid"))
    assert paid["payment_status"] == "paid"
    assert shop.client.post(f"/api/orders/{order['id']}/paid").status_code == 409
    listed = shop.ok(shop.client.get("/api/orders", params={"show": order["show_id"]}))
    assert [o["id"] for o in listed] == [order["id"]]
    assert shop.client.get("/api/orders", headers={"Authorization": ""}).status_code == 401
