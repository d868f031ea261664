"""Card money through Stripe, against localstripe (a real, stateful Stripe emulator process):
authorize at checkout, capture at show end, declines, 3-D Secure, cancel, refunds, signed
webhooks (forged, duplicated, out of order, early), and money that lands too late."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from livesale.config import Settings
from tests.conftest import ONE_ADDRESS_ARGS, LiveServer, create_key, stripe_settings
from tests.localstripe import SECRET_KEY, WEBHOOK_SECRET, LocalStripe
from tests.orders.conftest import Shop, burst, checkout_body, wait_for
from tests.postgres import connect


@pytest.fixture
def hold_seconds() -> int:
    return 300


@pytest.fixture
def keep_finished() -> int:
    return 600


@pytest.fixture
def settings(
    settings: Settings, localstripe: LocalStripe, hold_seconds: int, keep_finished: int
) -> Settings:
    tuned = replace(
        settings, grace_seconds=1, hold_seconds=hold_seconds, keep_finished_seconds=keep_finished
    )
    return stripe_settings(tuned, localstripe, "manual")


def card(token: str) -> dict[str, Any]:
    return checkout_body(token, provider="stripe")


def held(
    shop: Shop, sku: str = "SILK", qty: int = 1, stock: int = 5
) -> tuple[str, dict[str, str], str]:
    shop.product(sku, stock=stock, amount=2500)
    show = shop.show([{"sku": sku}])
    buyer = shop.viewer("ada")
    return show, buyer, shop.ok(shop.hold(show, buyer, sku, qty=qty), 201)["hold_id"]


def order_row(shop: Shop, order_id: str) -> Any:
    with shop.db() as conn:
        row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    assert row is not None
    return row


def signed(event_type: str, obj: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """A Stripe event and its ``Stripe-Signature``, as Stripe signs them."""
    now = int(time.time())
    payload = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "object": "event",
            "type": event_type,
            "created": now,
            "data": {"object": obj},
        }
    ).encode()
    mac = hmac.new(secret.encode(), f"{now}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={now},v1={mac}"


def deliver(server: LiveServer, payload: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/payments/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


def payment_log(shop: Shop, order_id: str) -> list[str]:
    with shop.db() as conn:
        return [
            f"{r[0]}:{r[1]}"
            for r in conn.execute(
                "SELECT action, outcome FROM payment_log WHERE order_id = ? ORDER BY id",
                (order_id,),
            )
        ]


def test_card_is_authorized_then_captured_when_the_show_ends(
    shop: Shop, localstripe: LocalStripe
) -> None:
    """Checkout authorizes (manual capture, minor units, the order's currency, its id in the
    metadata); the show's end captures; the PaymentIntent is what Stripe itself reports."""
    show, buyer, hold_id = held(shop, qty=2)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    assert (order["state"], order["payment_status"], order["test"]) == (
        "confirmed",
        "authorized",
        False,
    )
    intent = localstripe.intent(order["payment_ref"])
    assert (intent["status"], intent["amount"], intent["currency"]) == (
        "requires_capture",
        5000,
        "eur",
    )
    assert intent["capture_method"] == "manual"
    assert intent["metadata"] == {"order_id": order["id"]}
    assert shop.stock("SILK")["sold"] == 2
    shop.end(show)
    wait_for(lambda: shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))["state"] == "ready")
    assert shop.ok(shop.client.get(f"/api/orders/{order['id']}"))["payment_status"] == "captured"
    assert localstripe.intent(order["payment_ref"])["status"] == "succeeded"


def test_a_declined_card_keeps_the_hold(shop: Shop, localstripe: LocalStripe) -> None:
    """A decline is a 402 in words; nothing is authorized and the hold stays for another card."""
    _, buyer, hold_id = held(shop)
    declined = shop.checkout(hold_id, buyer, card(localstripe.token("declined")))
    assert declined.status_code == 402, declined.text
    assert declined.json()["type"].endswith("payment-declined")
    assert "declined" in declined.json()["detail"].lower()
    first = order_row(shop, declined.json()["order_id"])
    assert (first["state"], first["payment_status"]) == ("declined", "declined")
    assert localstripe.intent(first["payment_ref"])["status"] == "requires_payment_method"
    assert shop.stock("SILK")["held"] == 1
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    assert order["state"] == "confirmed"


def test_bad_tokens_are_refused_before_anything_is_written(
    shop: Shop, localstripe: LocalStripe
) -> None:
    """A token Stripe.js did not make is a 422 with no order; one Stripe does not know is a
    declined order."""
    _, buyer, hold_id = held(shop)
    for token in ("", "4242424242424242", "tok_visa; drop table", "x" * 190):
        assert shop.checkout(hold_id, buyer, card(token)).status_code == 422, token
    with shop.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    unknown = shop.checkout(hold_id, buyer, card("tok_doesnotexist"))
    assert unknown.status_code == 402
    assert shop.stock("SILK")["held"] == 1


def test_3d_secure_is_completed_by_the_buyer_then_confirmed_by_stripe(
    shop: Shop, localstripe: LocalStripe
) -> None:
    """``requires_action``: 202 with the client secret; the hold is confirmed only once Stripe
    says the amount is authorized, not on the browser's word."""
    _, buyer, hold_id = held(shop)
    body = card(localstripe.token("3ds"))
    waiting = shop.checkout(hold_id, buyer, body)
    assert waiting.status_code == 202, waiting.text
    order = waiting.json()
    assert (order["state"], order["payment_status"]) == ("pending", "requires_action")
    secret = order["next_action"]["client_secret"]
    assert order["next_action"]["type"] == "authenticate" and secret.startswith(
        order["payment_ref"]
    )
    # The browser claims it is done before it is: Stripe still says requires_action.
    again = shop.checkout(hold_id, buyer, body)
    assert again.status_code == 202 and shop.stock("SILK")["sold"] == 0
    listed = shop.ok(shop.client.get(f"/api/orders/{order['id']}"))
    assert listed["next_action"] is None  # the secret is for the buyer's checkout only
    localstripe.authenticate(order["payment_ref"], secret)
    done = shop.ok(shop.checkout(hold_id, buyer, body), 201)
    assert (done["id"], done["state"], done["payment_status"]) == (
        order["id"],
        "confirmed",
        "authorized",
    )
    assert shop.stock("SILK")["sold"] == 1


def test_failed_3d_secure_is_a_decline(shop: Shop, localstripe: LocalStripe) -> None:
    _, buyer, hold_id = held(shop)
    body = card(localstripe.token("3ds"))
    order = shop.ok(shop.checkout(hold_id, buyer, body), 202)
    localstripe.authenticate(order["payment_ref"], order["next_action"]["client_secret"], False)
    failed = shop.checkout(hold_id, buyer, body)
    assert failed.status_code == 402, failed.text
    assert order_row(shop, order["id"])["state"] == "declined"
    assert shop.stock("SILK")["held"] == 1


def test_webhooks_apply_once_in_any_order(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    """A webhook before the browser's return confirms the order; the same event again, an
    older event after a newer one, and the browser's own return change nothing more."""
    _, buyer, hold_id = held(shop)
    body = card(localstripe.token("3ds"))
    order = shop.ok(shop.checkout(hold_id, buyer, body), 202)
    ref = order["payment_ref"]
    localstripe.authenticate(ref, order["next_action"]["client_secret"])
    intent = localstripe.intent(ref)
    event = signed("payment_intent.amount_capturable_updated", intent)
    assert deliver(server, *event).status_code == 200
    confirmed = order_row(shop, order["id"])
    assert (confirmed["state"], confirmed["payment_status"]) == ("confirmed", "authorized")
    log = payment_log(shop, order["id"])
    assert deliver(server, *event).status_code == 200  # Stripe delivers at least once
    stale = signed("payment_intent.requires_action", {**intent, "status": "requires_action"})
    assert deliver(server, *stale).status_code == 200
    failed = signed("payment_intent.payment_failed", intent)
    assert deliver(server, *failed).status_code == 200
    assert shop.checkout(hold_id, buyer, body).status_code == 200
    after = order_row(shop, order["id"])
    assert (after["state"], after["payment_status"], after["updated_at"]) == (
        "confirmed",
        "authorized",
        confirmed["updated_at"],
    )
    assert payment_log(shop, order["id"]) == log
    assert shop.stock("SILK")["sold"] == 1
    with shop.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM stripe_events").fetchone()[0] == 3


def test_a_forged_webhook_is_refused_and_changes_nothing(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    _, buyer, hold_id = held(shop)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    intent = {**localstripe.intent(order["payment_ref"]), "status": "canceled"}
    payload, _ = signed("payment_intent.canceled", intent)
    _, wrong = signed("payment_intent.canceled", intent, secret="whsec_not_the_shops")
    for signature in (wrong, "", "t=1,v1=00", f"t={int(time.time())},v1=" + "0" * 64):
        refused = deliver(server, payload, signature)
        assert refused.status_code == 400, refused.text
        assert refused.json()["type"].endswith("signature")
    stale_payload, stale = signed("payment_intent.canceled", intent)
    # Signed, but an hour old: a replay.
    old = int(time.time()) - 3600
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{old}.".encode() + stale_payload, hashlib.sha256)
    assert deliver(server, stale_payload, f"t={old},v1={mac.hexdigest()}").status_code == 400
    row = order_row(shop, order["id"])
    assert (row["state"], row["payment_status"]) == ("confirmed", "authorized")
    with shop.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM stripe_events").fetchone()[0] == 0
    assert localstripe.intent(order["payment_ref"])["status"] == "requires_capture"


def test_localstripe_delivers_its_own_signed_events(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    """The events localstripe itself sends (here: the capture's ``payment_intent.succeeded``)
    pass the signature check and are recorded once."""
    localstripe.send_webhooks_to(f"{server.url}/api/payments/stripe/webhook")
    show, buyer, hold_id = held(shop)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    shop.end(show)

    def succeeded() -> bool:
        with shop.db() as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM stripe_events WHERE type = 'payment_intent.succeeded'"
                    " AND order_id = ?",
                    (order["id"],),
                ).fetchone()
            )

    wait_for(succeeded)
    assert order_row(shop, order["id"])["payment_status"] == "captured"


def test_cancel_before_capture_voids_and_returns_the_units(
    shop: Shop, localstripe: LocalStripe
) -> None:
    _, buyer, hold_id = held(shop, qty=2)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    assert shop.stock("SILK") == {"sku": "SILK", "on_hand": 5, "available": 3, "held": 0, "sold": 2}
    cancelled = shop.ok(
        shop.client.post(f"/api/orders/{order['id']}/cancel", json={"reason": "out of stock"})
    )
    assert (cancelled["state"], cancelled["payment_status"], cancelled["returned_qty"]) == (
        "cancelled",
        "voided",
        2,
    )
    assert localstripe.intent(order["payment_ref"])["status"] == "canceled"
    assert shop.stock("SILK") == {"sku": "SILK", "on_hand": 5, "available": 5, "held": 0, "sold": 0}
    ledger = shop.ok(shop.client.get("/api/stock/SILK/ledger"))
    assert ledger[0]["delta"] == 0 and "2 unit(s) back on sale" in ledger[0]["reason"]
    # Again: nothing more happens.
    assert shop.ok(shop.client.post(f"/api/orders/{order['id']}/cancel"))["state"] == "cancelled"
    assert shop.stock("SILK")["available"] == 5
    refused = shop.client.post(f"/api/orders/{order['id']}/refund")
    assert refused.status_code == 409


def test_refund_some_units_then_the_rest(shop: Shop, localstripe: LocalStripe) -> None:
    """After capture: a refund of one unit, then of the rest; Stripe's charge agrees and the
    units are back on sale; cancelling a captured order is refused."""
    show, buyer, hold_id = held(shop, qty=3)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    early = shop.client.post(f"/api/orders/{order['id']}/refund", json={"qty": 1})
    assert early.status_code == 409 and "cancel" in early.json()["detail"]
    shop.end(show)
    wait_for(
        lambda: (
            shop.ok(shop.client.get(f"/api/orders/{order['id']}"))["payment_status"] == "captured"
        )
    )
    assert shop.client.post(f"/api/orders/{order['id']}/cancel").status_code == 409
    one = shop.ok(shop.client.post(f"/api/orders/{order['id']}/refund", json={"qty": 1}))
    assert (one["state"], one["payment_status"], one["returned_qty"], one["refunded"]) == (
        "confirmed",
        "partially_refunded",
        1,
        {"amount": 2500, "currency": "EUR"},
    )
    assert localstripe.charge(order["payment_ref"])["amount_refunded"] == 2500
    assert shop.stock("SILK")["available"] == 3
    too_many = shop.client.post(f"/api/orders/{order['id']}/refund", json={"qty": 3})
    assert too_many.status_code == 422
    rest = shop.ok(shop.client.post(f"/api/orders/{order['id']}/refund"))
    assert (rest["state"], rest["payment_status"], rest["returned_qty"]) == (
        "refunded",
        "refunded",
        3,
    )
    assert localstripe.charge(order["payment_ref"])["amount_refunded"] == 7500
    assert shop.stock("SILK") == {"sku": "SILK", "on_hand": 5, "available": 5, "held": 0, "sold": 0}
    parcels = shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))["parcels"]
    assert parcels == []


def test_a_refund_made_in_stripes_dashboard_is_recorded(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    show, buyer, hold_id = held(shop, qty=2)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    shop.end(show)
    wait_for(
        lambda: (
            shop.ok(shop.client.get(f"/api/orders/{order['id']}"))["payment_status"] == "captured"
        )
    )
    localstripe.refund(order["payment_ref"])
    charge = localstripe.charge(order["payment_ref"])
    assert deliver(server, *signed("charge.refunded", charge)).status_code == 200
    after = shop.ok(shop.client.get(f"/api/orders/{order['id']}"))
    assert (after["state"], after["returned_qty"], after["refunded"]["amount"]) == (
        "refunded",
        2,
        5000,
    )
    assert shop.stock("SILK")["available"] == 5


@pytest.mark.parametrize("hold_seconds", [2])
def test_a_payment_authorized_after_its_hold_expired_is_voided(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    """3-D Secure finished after the hold ran out: the authorization is cancelled, never kept
    and never a sale, whether the browser or a webhook tells the server first."""
    _, buyer, hold_id = held(shop)
    body = card(localstripe.token("3ds"))
    order = shop.ok(shop.checkout(hold_id, buyer, body), 202)
    wait_for(
        lambda: shop.client.get(f"/api/holds/{hold_id}", headers=buyer).json()["state"] == "expired"
    )
    localstripe.authenticate(order["payment_ref"], order["next_action"]["client_secret"])
    assert localstripe.intent(order["payment_ref"])["status"] == "requires_capture"
    late = shop.checkout(hold_id, buyer, body)
    assert late.status_code == 409 and late.json()["type"].endswith("hold-expired"), late.text
    assert localstripe.intent(order["payment_ref"])["status"] == "canceled"
    row = order_row(shop, order["id"])
    assert (row["state"], row["payment_status"]) == ("expired", "voided")
    assert shop.stock("SILK") == {"sku": "SILK", "on_hand": 5, "available": 5, "held": 0, "sold": 0}

    # The same again, told by a webhook alone.
    second = shop.ok(shop.hold(shop.show([{"sku": "SILK"}]), buyer, "SILK", key="k2"), 201)
    waiting = shop.ok(shop.checkout(second["hold_id"], buyer, card(localstripe.token("3ds"))), 202)
    wait_for(
        lambda: (
            shop.client.get(f"/api/holds/{second['hold_id']}", headers=buyer).json()["state"]
            == "expired"
        )
    )
    localstripe.authenticate(waiting["payment_ref"], waiting["next_action"]["client_secret"])
    event = signed(
        "payment_intent.amount_capturable_updated", localstripe.intent(waiting["payment_ref"])
    )
    assert deliver(server, *event).status_code == 200
    assert localstripe.intent(waiting["payment_ref"])["status"] == "canceled"
    assert order_row(shop, waiting["id"])["state"] == "expired"
    assert shop.stock("SILK")["sold"] == 0


@pytest.mark.parametrize(("hold_seconds", "keep_finished"), [(2, 1)])
def test_a_payment_authorized_after_its_hold_was_forgotten_is_voided(
    shop: Shop, server: LiveServer, localstripe: LocalStripe
) -> None:
    """3-D Secure finished after the hold expired and was forgotten (finished holds are kept
    for minutes): the webhook cancels the authorization and the order expires, as when the
    hold is still remembered."""
    _, buyer, hold_id = held(shop)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("3ds"))), 202)
    wait_for(lambda: shop.client.get(f"/api/holds/{hold_id}", headers=buyer).status_code == 404)
    localstripe.authenticate(order["payment_ref"], order["next_action"]["client_secret"])
    event = signed(
        "payment_intent.amount_capturable_updated", localstripe.intent(order["payment_ref"])
    )
    assert deliver(server, *event).status_code == 200
    assert localstripe.intent(order["payment_ref"])["status"] == "canceled"
    row = order_row(shop, order["id"])
    assert (row["state"], row["payment_status"]) == ("expired", "voided")
    assert shop.stock("SILK") == {"sku": "SILK", "on_hand": 5, "available": 5, "held": 0, "sold": 0}


def test_kill_mid_checkout_leaves_no_dangling_authorization(
    spawn: Any, tmp_path: Path, localstripe: LocalStripe, database_url: str
) -> None:
    """kill -9 in a burst of card checkouts; after the restart every order is final and
    Stripe holds an authorization for exactly the confirmed ones: nothing charged twice,
    nothing left reserved. The secret keys never reach the server's output."""
    data = tmp_path / "drill"
    database = database_url or data / "livesale.db"
    args = [
        "--data-dir",
        str(data),
        *(["--database-url", database_url] if database_url else []),
        "--log-level",
        "info",
        *localstripe.serve_args(),
        *ONE_ADDRESS_ARGS,
    ]
    proc = spawn(*args)
    key = create_key(database_url or data)
    client = httpx.Client(base_url=proc.url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    client.post(
        "/api/products",
        json={
            "sku": "KILL",
            "title": "K",
            "price": {"amount": 900, "currency": "EUR"},
            "stock": 30,
        },
    ).raise_for_status()
    show = client.post("/api/shows", json={"title": "Drill", "host_name": "Mia"}).json()["id"]
    client.put(f"/api/shows/{show}/lineup", json=[{"sku": "KILL"}]).raise_for_status()
    client.post(f"/api/shows/{show}/start").raise_for_status()
    viewers = [client.post("/api/viewers", json={"nickname": f"b{i}"}) for i in range(30)]
    buyers = [{"Authorization": f"Bearer {v.json()['token']}"} for v in viewers]
    holds = [
        client.post(
            f"/api/shows/{show}/holds",
            json={"sku": "KILL", "qty": 1, "idempotency_key": "k"},
            headers=b,
        ).json()["hold_id"]
        for b in buyers
    ]
    tokens = [localstripe.token("visa") for _ in buyers]
    client.close()

    async def checkouts_then_kill() -> None:
        tasks = [
            asyncio.ensure_future(
                burst(proc.url, [("POST", f"/api/holds/{h}/checkout", card(t), b)])
            )
            for h, t, b in zip(holds, tokens, buyers, strict=True)
        ]
        # Killed once Stripe holds the first PaymentIntents, with every checkout under way.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with connect(database) as conn:
                done = conn.execute(
                    "SELECT COUNT(*) FROM orders WHERE payment_ref != ''"
                ).fetchone()[0]
            if done >= 5:
                break
            await asyncio.sleep(0.01)
        assert proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(checkouts_then_kill())
    assert proc.proc is not None
    proc.proc.wait()
    again = spawn(*args, port=proc.port)

    def settled() -> bool:
        with connect(database) as conn:
            left = conn.execute(
                "SELECT COUNT(*) FROM orders WHERE state IN ('pending', 'authorized')"
            ).fetchone()[0]
        return not left

    wait_for(settled)
    with connect(database) as conn:
        rows = conn.execute("SELECT id, state, payment_ref FROM orders").fetchall()
    assert rows, "the kill came before any checkout reached the database"
    confirmed = {ref for _, state, ref in rows if state == "confirmed"}
    intents = localstripe.client.get(
        "/v1/payment_intents",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    ).json()["data"]
    reserved = {i["id"] for i in intents if i["status"] in ("requires_capture", "succeeded")}
    assert reserved == confirmed
    ours = {ref for _, _, ref in rows if ref}
    # A PaymentIntent created just before the kill, before its order stored it, was never
    # confirmed: nothing is reserved on it.
    assert all(
        i["status"] in ("requires_confirmation", "canceled")
        for i in intents
        if i["id"] not in confirmed
    )
    assert ours <= {i["id"] for i in intents}
    level = httpx.get(f"{again.url}/api/stock/KILL").json()
    assert level["sold"] == len(confirmed)
    assert level["available"] + level["held"] + level["sold"] == level["on_hand"] == 30
    for proc_log in (proc.output(), again.output()):
        assert SECRET_KEY not in proc_log and WEBHOOK_SECRET not in proc_log


def test_a_failed_capture_is_reported_not_dropped(
    shop: Shop, localstripe: LocalStripe, caplog: pytest.LogCaptureFixture
) -> None:
    """The authorization is gone by the show's end (cancelled at Stripe; a lapsed one looks
    the same): the order is ``capture_failed``, logged as an error, listed as unpaid in the
    batch instead of packed, and the merchant can still cancel it to put the units back."""
    show, buyer, hold_id = held(shop, qty=2)
    order = shop.ok(shop.checkout(hold_id, buyer, card(localstripe.token("visa"))), 201)
    kept = buy_one(shop, show, localstripe)
    localstripe.client.post(
        f"/v1/payment_intents/{order['payment_ref']}/cancel",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    ).raise_for_status()
    shop.end(show)
    batch = wait_for(
        lambda: (
            (b := shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment")))["state"] == "ready"
            and b
        )
    )
    assert batch["unpaid"] == [order["id"]]
    assert [line["order_id"] for p in batch["parcels"] for line in p["lines"]] == [kept]
    failed = shop.ok(shop.client.get(f"/api/orders/{order['id']}"))
    assert failed["payment_status"] == "capture_failed" and "capture failed" in failed["reason"]
    assert any(r.levelname == "ERROR" and order["id"] in r.getMessage() for r in caplog.records)
    cancelled = shop.ok(shop.client.post(f"/api/orders/{order['id']}/cancel"))
    assert cancelled["state"] == "cancelled"
    assert shop.stock("SILK")["sold"] == 1


def buy_one(shop: Shop, show: str, localstripe: LocalStripe) -> str:
    """Another buyer pays for one unit by card; their order id."""
    buyer = shop.viewer("bo")
    hold = shop.ok(shop.hold(show, buyer, "SILK", key="bo"), 201)
    return str(shop.ok(shop.checkout(hold["hold_id"], buyer, card(localstripe.token())), 201)["id"])
