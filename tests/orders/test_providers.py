"""The merchant chooses the payment providers; the buyer never can, and test money is only
ever on when asked for, and then said loudly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from livesale.config import Settings
from tests.conftest import LiveServer, stripe_settings
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, LocalStripe
from tests.orders.conftest import Shop, checkout_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A server started with no payment option at all."""
    return replace(settings, payments=Settings().payments)


def test_only_enabled_providers_are_accepted(shop: Shop) -> None:
    """A fresh server takes ``manual`` only: the test card and any other provider are a 422
    ``payment-provider`` problem, and nothing is written or sold."""
    shop.product("PEN", 3)
    show = shop.show([{"sku": "PEN"}])
    buyer = shop.viewer("ada")
    hold = shop.ok(shop.hold(show, buyer, "PEN"), 201)["hold_id"]
    for body in (
        checkout_body("tok_visa", provider="test"),
        checkout_body("tok_123", provider="stripe"),
        checkout_body("", provider="bitcoin"),
    ):
        refused = shop.checkout(hold, buyer, body)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["type"].endswith("payment-provider")
        assert problem["accepted"] == ["manual"] and "manual" in problem["detail"]
    with shop.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM test_payments").fetchone()[0] == 0
    assert shop.stock("PEN") == {"sku": "PEN", "on_hand": 3, "available": 2, "held": 1, "sold": 0}
    order = shop.ok(shop.checkout(hold, buyer, checkout_body("", provider="manual")), 201)
    assert (order["payment_status"], order["test"]) == ("due", False)
    assert shop.ok(shop.client.get("/api/payments")) == {
        "providers": [{"name": "manual"}],
        "test_mode": False,
    }


@pytest.fixture
def demo_server(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(replace(settings, demo=True)).start()
    yield live
    live.stop()


def test_demo_turns_test_money_on_and_says_so(demo_server: LiveServer) -> None:
    """``--demo`` adds the test provider; then the payments say ``test_mode`` and the landing
    page carries the banner."""
    with demo_server.client() as client:
        assert client.get("/api/payments").json() == {
            "providers": [{"name": "manual"}, {"name": "test"}],
            "test_mode": True,
        }
        assert "Test mode" in client.get("/").text


def test_stripe_settings_show_the_publishable_key_only(
    settings: Settings, localstripe: LocalStripe
) -> None:
    """The pages get the publishable key and Stripe.js's URL; the secret key and the webhook
    secret appear in no page, no API answer, no metric and no setting's repr."""
    live = LiveServer(stripe_settings(settings, localstripe, "manual")).start()
    try:
        with live.client(headers=live.merchant) as client:
            show = client.post("/api/shows", json={"title": "S", "host_name": "H"}).json()
            assert client.get("/api/payments").json() == {
                "providers": [
                    {
                        "name": "stripe",
                        "publishable_key": PUBLISHABLE_KEY,
                        "js_url": localstripe.js_url,
                    },
                    {"name": "manual"},
                ],
                "test_mode": False,
            }
            pages = [
                "/",
                f"/watch/{show['id']}",
                f"/studio/{show['id']}",
                "/api/payments",
                "/api/openapi.json",
                "/metrics",
                "/healthz",
                f"/api/shows/{show['id']}",
            ]
            for path in pages:
                text = client.get(path).text
                assert SECRET_KEY not in text and WEBHOOK_SECRET not in text, path
        assert SECRET_KEY not in repr(live.settings)
        assert WEBHOOK_SECRET not in repr(live.settings)
    finally:
        live.stop()


def serve_fails(spawn: Any, *args: str) -> str:
    proc = spawn(*args, wait=False)
    assert proc.proc.wait(30) != 0
    return str(proc.output())


def test_serve_names_its_payments_and_refuses_bad_ones(spawn: Any, tmp_path: Path) -> None:
    """``serve`` says at start which money it takes; test money in red; unknown providers and
    a Stripe without its keys stop it before it serves anything."""
    plain = spawn("--data-dir", str(tmp_path / "a"))
    out = plain.output()
    assert "Payments accepted: manual" in out and "manual only" in out
    assert "TEST" not in out
    plain.stop()
    demo = spawn("--data-dir", str(tmp_path / "b"), "--demo")
    out = demo.output()
    assert "Payments accepted: manual, test" in out
    assert "TEST MODE" in out and "TEST PAYMENTS ARE ON" in out
    demo.stop()
    assert "unknown payment provider 'paypal'" in serve_fails(
        spawn, "--data-dir", str(tmp_path / "c"), "--payments", "manual,paypal"
    )
    missing = serve_fails(spawn, "--data-dir", str(tmp_path / "d"), "--payments", "stripe")
    assert "--stripe-secret-key" in missing and "--stripe-webhook-secret" in missing
    os.environ["LIVESALE_PAYMENTS"] = "test"
    try:
        from_env = spawn("--data-dir", str(tmp_path / "e"))
    finally:
        del os.environ["LIVESALE_PAYMENTS"]
    assert httpx.get(f"{from_env.url}/api/payments").json()["providers"] == [{"name": "test"}]
