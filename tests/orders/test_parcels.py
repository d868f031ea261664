"""The parcel's journey: after a show's batch is made the merchant marks parcels shipped (API or
`livesale orders ship` with the parcels export filled in); the buyer's orders page, the buyer's
room and the `parcel.shipped` webhook follow."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from livesale.cli import main
from livesale.config import Settings
from tests.conftest import LiveServer
from tests.orders.conftest import Receiver, Shop, wait_for
from tests.test_cli_orders import buy, close


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, grace_seconds=1)


def mine(shop: Shop, token: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{shop.url}/api/me/orders", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_shipping_parcels_reaches_the_buyer_and_the_webhook(
    shop: Shop, server: LiveServer, receiver: Receiver
) -> None:
    """All or nothing; repeating a shipment changes nothing, correcting one tells again."""
    shop.ok(
        shop.client.put(
            "/api/webhook", json={"url": f"http://127.0.0.1:{receiver.server_port}/hook"}
        )
    )
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    ada = shop.ok(shop.client.post("/api/viewers", json={"nickname": "ada"}), 201)
    auth = {"Authorization": f"Bearer {ada['token']}"}
    for key in ("a", "b"):
        hold = shop.ok(shop.hold(show, auth, "LIP-01", key=key), 201)
        shop.ok(shop.checkout(hold["hold_id"], auth), 201)
    bob = buy(shop, show, "bob", "LIP-01")
    url = f"/api/shows/{show}/shipments"
    unknown = {"parcel_id": "pc_x", "carrier": "DHL", "tracking_number": "1"}
    early = shop.client.post(url, json=[unknown])
    assert early.status_code == 409, early.text  # no batch before the show's closing
    assert all(o["parcel_id"] is None for o in mine(shop, ada["token"]))

    batch = close(shop, show)
    parcels = {p["nickname"]: p for p in batch["parcels"]}
    assert len(parcels["ada"]["lines"]) == 2 and parcels["ada"]["shipment"] is None
    again = shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))
    assert {p["id"] for p in again["parcels"]} == {p["id"] for p in batch["parcels"]}

    ws = server.url.replace("http://", "ws://") + f"/ws/shows/{show}?token={ada['token']}"
    with connect(ws) as room:
        json.loads(room.recv(10))
        refused = shop.client.post(
            url,
            json=[
                {"parcel_id": parcels["ada"]["id"], "carrier": "DHL", "tracking_number": "JD1"},
                {"parcel_id": "pc_nope", "carrier": "DHL", "tracking_number": "JD2"},
            ],
        )
        assert refused.status_code == 422 and "pc_nope" in refused.text
        assert all(o["shipment"] is None for o in mine(shop, ada["token"]))
        ship = {
            "parcel_id": parcels["ada"]["id"],
            "carrier": "SF Express",
            "tracking_number": "SF1",
        }
        done = shop.ok(shop.client.post(url, json=[ship]))
        assert done["shipped"] == 1 and done["unchanged"] == 0
        while (frame := json.loads(room.recv(30)))["type"] != "parcel":
            pass
        assert frame["parcel"]["shipment"]["tracking_number"] == "SF1"
    orders = mine(shop, ada["token"])
    assert len(orders) == 2 and {o["show_id"] for o in orders} == {show}
    assert all(o["shipment"]["carrier"] == "SF Express" for o in orders)
    assert all(o["shipment"]["tracking_number"] == "SF1" for o in orders)
    assert orders[0]["title"] == "Product LIP-01" and orders[0]["show_title"] == "Flash"
    # Bob's order is not Ada's: her list holds only her own.
    assert bob["id"] not in {o["id"] for o in orders}
    assert shop.ok(shop.client.post(url, json=[ship]))["unchanged"] == 1
    fixed = dict(ship, tracking_number="SF2")
    assert shop.ok(shop.client.post(url, json=[fixed]))["shipped"] == 1
    assert {o["shipment"]["tracking_number"] for o in mine(shop, ada["token"])} == {"SF2"}
    bad = dict(ship, tracking_number="SF\x1b[31m")
    assert shop.client.post(url, json=[bad]).status_code == 422

    def shipped_twice() -> bool:
        events = [d["event"] for d in shop.ok(shop.client.get("/api/webhook/deliveries"))]
        return events.count("parcel.shipped") == 2

    wait_for(shipped_twice)
    with httpx.Client(base_url=shop.url) as anyone:
        assert anyone.get("/api/me/orders").status_code == 401


def test_cli_ships_from_the_filled_in_export(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The parcels export, with carrier and tracking number filled in for some rows, is the
    tracking file; a bad row is reported with its line and nothing is marked."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    ada, bob = (
        shop.ok(shop.client.post("/api/viewers", json={"nickname": n}), 201) for n in ("ada", "bob")
    )
    for viewer in (ada, bob):
        auth = {"Authorization": f"Bearer {viewer['token']}"}
        hold = shop.ok(shop.hold(show, auth, "LIP-01"), 201)
        shop.ok(shop.checkout(hold["hold_id"], auth), 201)
    close(shop, show)
    args = ["--server", shop.url, "--api-key", shop.api_key]
    export = tmp_path / "parcels.csv"
    assert main(["orders", "export", show, "--output", str(export), *args]) == 0
    rows = list(csv.DictReader(io.StringIO(export.read_text())))
    assert len(rows) == 2
    for row in rows:
        if row["nickname"] == "ada":
            row.update(carrier="YTO", tracking_number="-YT123")  # a cell the export guards
    tracking = tmp_path / "tracking.csv"
    with tracking.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    broken = tmp_path / "broken.csv"
    broken.write_text("parcel_id,carrier,tracking_number\npc_1,DHL,\n")
    capsys.readouterr()
    assert main(["orders", "ship", show, str(broken), *args]) == 1
    assert "broken.csv:2" in capsys.readouterr().err
    assert main(["orders", "ship", show, str(tracking), *args]) == 0
    assert "1 parcel(s) marked shipped" in capsys.readouterr().out
    (ada_order,) = mine(shop, ada["token"])
    assert ada_order["shipment"]["carrier"] == "YTO"
    assert ada_order["shipment"]["tracking_number"] == "-YT123"
    (bob_order,) = mine(shop, bob["token"])
    assert bob_order["shipment"] is None and bob_order["parcel_id"]
    assert main(["orders", "export", show, "--output", str(export), *args]) == 0
    shipped = {r["nickname"]: r for r in csv.DictReader(io.StringIO(export.read_text()))}
    assert shipped["ada"]["tracking_number"] == "'-YT123"  # inert in a spreadsheet
    assert shipped["ada"]["carrier"] == "YTO" and shipped["bob"]["carrier"] == ""
