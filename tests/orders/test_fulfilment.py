"""Show end: grace period, release, capture, fulfilment batch, signed webhooks, export."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import pytest

from livesale.cli import main
from livesale.config import Settings
from tests.orders.conftest import Receiver, Shop, checkout_body, wait_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, grace_seconds=1)


def test_show_end_ships_one_parcel_per_buyer(
    shop: Shop, receiver: Receiver, tmp_path: Path
) -> None:
    """A show sold only live: after the grace period, holds released, payments captured,
    parcels per buyer, webhooks."""
    hook = shop.ok(
        shop.client.put(
            "/api/webhook", json={"url": f"http://127.0.0.1:{receiver.server_port}/hook"}
        )
    )
    shop.product("LIP-01", stock=10)
    shop.product("PAL-01", stock=10, amount=4500)
    show = shop.show([{"sku": "LIP-01"}, {"sku": "PAL-01"}], replay_sales=False)
    ada, bob, cat = shop.viewer("ada"), shop.viewer("bob"), shop.viewer("cat")
    for buyer, sku, qty in ((ada, "LIP-01", 2), (ada, "PAL-01", 1), (bob, "LIP-01", 1)):
        hold = shop.ok(shop.hold(show, buyer, sku, qty=qty, key=sku), 201)
        shop.ok(shop.checkout(hold["hold_id"], buyer), 201)
    late = shop.ok(shop.hold(show, cat, "LIP-01", qty=3), 201)
    lingering = shop.ok(shop.hold(show, bob, "PAL-01", qty=1), 201)
    shop.end(show)
    refused = shop.hold(show, cat, "PAL-01", key="after-end")
    assert refused.status_code == 409
    assert shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))["state"] == "grace"
    # Inside the grace period a live hold may still check out.
    shop.ok(shop.checkout(late["hold_id"], cat, checkout_body(name="Cat Stevens")), 201)
    batch = wait_for(
        lambda: (
            (b := shop.client.get(f"/api/shows/{show}/fulfilment").json())["state"] == "ready" and b
        )
    )
    assert (
        shop.client.get(f"/api/holds/{lingering['hold_id']}", headers=bob).json()["state"]
        == "released"
    )
    parcels = {p["nickname"]: p for p in batch["parcels"]}
    assert set(parcels) == {"ada", "bob", "cat"}
    assert parcels["ada"]["units"] == 3 and len(parcels["ada"]["lines"]) == 2
    assert parcels["ada"]["totals"] == [{"amount": 2 * 1990 + 4500, "currency": "EUR"}]
    assert parcels["cat"]["shipping"]["name"] == "Cat Stevens"
    assert (batch["orders"], batch["units"]) == (4, 7)
    with shop.db() as conn:
        statuses = {r[0] for r in conn.execute("SELECT payment_status FROM orders")}
    assert statuses == {"captured"}
    assert shop.stock("LIP-01") == {
        "sku": "LIP-01",
        "on_hand": 10,
        "available": 4,
        "held": 0,
        "sold": 6,
    }
    assert shop.stock("PAL-01")["held"] == 0

    received = wait_for(lambda: len(receiver.received) >= 5 and receiver.received)
    events = [json.loads(body)["event"] for _, body in received]
    assert events.count("order.paid") == 4 and events[-1] == "show.fulfilment_ready"
    for headers, body in received:
        expected = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Livesale-Signature"] == expected
    # The server records a delivery once it has read the receiver's answer: after the receiver
    # has the body, so wait for the log to catch up.
    log = wait_for(
        lambda: (
            (entries := shop.ok(shop.client.get("/api/webhook/deliveries")))
            and all(d["state"] == "delivered" for d in entries)
            and entries
        )
    )
    assert max(d["attempts"] for d in log) == 2  # the first delivery failed and was retried

    out = tmp_path / "batch.csv"
    args = ["--server", shop.url, "--api-key", shop.api_key]
    assert main(["orders", "export", show, "--format", "csv", "--output", str(out), *args]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("parcel_id,viewer_id,nickname,name,address,email,items")
    assert len(rows) == 1 + 3  # a row per parcel
    assert main(["orders", "export", show, "--format", "json", "--output", str(out), *args]) == 0
    assert len(json.loads(out.read_text())["parcels"]) == 3
    assert main(["orders", "list", "--show", show, *args]) == 0
