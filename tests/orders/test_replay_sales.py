"""Selling on the replay: holds after the end within the live limits, later fulfilment batches,
and the merchant's switch; against a real server, Redis and SQLite."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.sync.client import connect

from livesale import keys
from livesale.config import Settings
from tests.conftest import LiveServer
from tests.orders.conftest import Receiver, Shop, checkout_body, wait_for
from tests.orders.test_parcels import mine
from tests.room.conftest import ws_url
from tests.test_cli import Cli


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """A 1 s grace period, and the settings a test gives through ``indirect``."""
    return replace(settings, grace_seconds=1, **getattr(request, "param", {}))


def viewer(shop: Shop, nickname: str) -> tuple[dict[str, str], str, str]:
    """A new viewer's ``Authorization`` header, token and id."""
    made = shop.ok(shop.client.post("/api/viewers", json={"nickname": nickname}), 201)
    return {"Authorization": f"Bearer {made['token']}"}, made["token"], made["viewer_id"]


def first_batch(shop: Shop, show: str) -> dict[str, Any]:
    """The show's fulfilment once its grace period is over and the first batch is made."""
    batch: dict[str, Any] = wait_for(
        lambda: (
            (b := shop.client.get(f"/api/shows/{show}/fulfilment").json())["state"] == "ready" and b
        )
    )
    return batch


def test_the_replay_sells_within_the_live_limits_and_ships_in_a_later_batch(
    shop: Shop, server: LiveServer, receiver: Receiver, redis_url: str
) -> None:
    """After the end, Buy still holds and checks out, with the per-buyer limit counting what
    the buyer got live; the grace period releases no replay hold; the first batch packs what
    was confirmed by then and a later batch the rest, each with its own parcels, capture and
    webhook; the room keeps carrying stock but no chat."""
    shop.ok(
        shop.client.put(
            "/api/webhook", json={"url": f"http://127.0.0.1:{receiver.server_port}/hook"}
        )
    )
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01", "limit_per_buyer": 2}])
    ada, ada_token, _ = viewer(shop, "ada")
    bob, _, _ = viewer(shop, "bob")
    live = shop.ok(shop.hold(show, ada, "LIP-01", key="live"), 201)
    shop.ok(shop.checkout(live["hold_id"], ada), 201)
    ended = shop.ok(shop.client.post(f"/api/shows/{show}/end"))
    assert ended["replay_sales"] is True and ended["sales_close_at"] is None

    with connect(ws_url(shop.url, show, ada_token), open_timeout=30) as room:
        snapshot = json.loads(room.recv(timeout=30))
        assert snapshot["show"]["state"] == "ended" and snapshot["show"]["replay_sales"] is True
        replayed = shop.ok(shop.hold(show, ada, "LIP-01", key="replay"), 201)
        # The limit of 2 counts the unit bought live: a third is refused.
        refused = shop.hold(show, ada, "LIP-01", key="third")
        assert refused.status_code == 409 and refused.json()["type"].endswith("/limit")
        lingering = shop.ok(shop.hold(show, bob, "LIP-01", key="bob"), 201)
        frames = [json.loads(room.recv(timeout=30)) for _ in range(2)]
        assert {"stock"} <= {f["type"] for f in frames}
        room.send(json.dumps({"type": "chat", "text": "still there?"}))
        said = json.loads(room.recv(timeout=30))
        while said["type"] != "error":
            said = json.loads(room.recv(timeout=30))
        assert said["code"] == "show_ended"

    batch = first_batch(shop, show)
    assert (batch["batches"], batch["orders"], batch["waiting"]) == (1, 1, 0)
    # The grace period is over, and the replay's holds are still held.
    for hold, who in ((replayed, ada), (lingering, bob)):
        assert shop.client.get(f"/api/holds/{hold['hold_id']}", headers=who).json()["state"] == (
            "held"
        )
    shop.ok(shop.checkout(replayed["hold_id"], ada, checkout_body(name="Ada Replay")), 201)
    waiting = shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))
    assert (waiting["batches"], waiting["orders"], waiting["waiting"]) == (1, 1, 1)
    later = shop.ok(shop.client.post(f"/api/shows/{show}/batches"), 201)
    assert (later["batch"], later["batches"], later["orders"], later["waiting"]) == (2, 2, 1, 0)
    (parcel,) = later["parcels"]
    assert parcel["batch"] == 2 and parcel["shipping"]["name"] == "Ada Replay"
    assert parcel["id"] != batch["parcels"][0]["id"]
    again = shop.client.post(f"/api/shows/{show}/batches")
    assert again.status_code == 409, again.text  # nothing waits
    with shop.db() as conn:
        statuses = {r[0] for r in conn.execute("SELECT payment_status FROM orders")}
    assert statuses == {"captured"}

    every = shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment"))
    assert sorted(p["batch"] for p in every["parcels"]) == [1, 2]
    assert every["batch"] is None and every["orders"] == 2
    assert shop.client.get(f"/api/shows/{show}/fulfilment?batch=3").status_code == 404
    assert shop.client.get(f"/api/shows/{show}/fulfilment?batch=x").status_code == 422

    shipped = shop.client.post(
        f"/api/shows/{show}/shipments",
        json=[{"parcel_id": parcel["id"], "carrier": "DHL", "tracking_number": "R2"}],
    )
    assert shipped.status_code == 200, shipped.text
    orders = {o["id"]: o for o in mine(shop, ada_token)}
    replay_order = parcel["lines"][0]["order_id"]
    assert orders[replay_order]["parcel_id"] == parcel["id"]
    assert orders[replay_order]["shipment"]["tracking_number"] == "R2"
    (live_order,) = set(orders) - {replay_order}
    assert orders[live_order]["parcel_id"] == batch["parcels"][0]["id"]
    assert orders[live_order]["shipment"] is None

    received = wait_for(
        lambda: (
            (
                hooks := [
                    json.loads(body)["data"]
                    for _, body in receiver.received
                    if json.loads(body)["event"] == "show.fulfilment_ready"
                ]
            )
            and len(hooks) == 2
            and hooks
        )
    )
    assert [(h["batch"], h["orders"]) for h in received] == [(1, 1), (2, 1)]
    assert received[1]["fulfilment_url"] == f"/api/shows/{show}/fulfilment?batch=2"

    # What the replay's clicks read lives as long as the replay sells; the rest of the room
    # goes with the show's keep time.
    r = redis.Redis.from_url(redis_url)
    keep_ms = server.settings.show_keep_seconds * 1000
    for key in (keys.show(show), keys.lineup(show), keys.show_seq(show)):
        assert r.pttl(key) > keep_ms, key
    assert 0 < r.pttl(keys.show_presence(show)) <= keep_ms or not r.exists(keys.show_presence(show))


@pytest.mark.parametrize("settings", [{"replay_batch_hours": 0.001}], indirect=True)
def test_orders_taken_on_the_replay_are_packed_when_their_batch_is_due(shop: Shop) -> None:
    """Without the merchant asking, the replay's orders get their batch after
    ``--replay-batch-hours`` (here 3.6 s)."""
    shop.product("TEA", stock=5)
    show = shop.show([{"sku": "TEA"}])
    shop.end(show)
    first_batch(shop, show)
    ada, _, _ = viewer(shop, "ada")
    hold = shop.ok(shop.hold(show, ada, "TEA"), 201)
    shop.ok(shop.checkout(hold["hold_id"], ada), 201)
    packed = wait_for(
        lambda: (
            (f := shop.client.get(f"/api/shows/{show}/fulfilment").json())["batches"] == 2 and f
        ),
        seconds=60,
    )
    assert [p["batch"] for p in packed["parcels"]] == [2] and packed["waiting"] == 0


def test_the_merchant_turns_replay_sales_off(shop: Shop, redis_url: str) -> None:
    """Off before the end: the end closes sales as a live-only show's. Off after the end: new
    holds are refused at once, the replay's holds are released and its buyers' counts
    forgotten. Once ended without them, they cannot be turned on again."""
    shop.product("JAM", stock=5)
    early = shop.show([{"sku": "JAM"}])
    off = shop.ok(shop.client.patch(f"/api/shows/{early}", json={"replay_sales": False}))
    assert off["replay_sales"] is False
    shop.end(early)
    ada, _, ada_id = viewer(shop, "ada")
    assert shop.hold(early, ada, "JAM", key="early").status_code == 409
    reopen = shop.client.patch(f"/api/shows/{early}", json={"replay_sales": True})
    assert reopen.status_code == 409, reopen.text

    show = shop.show([{"sku": "JAM", "limit_per_buyer": 3}])
    shop.end(show)
    held = shop.ok(shop.hold(show, ada, "JAM", key="replay"), 201)
    r = redis.Redis.from_url(redis_url)
    assert r.hget(keys.buyers("JAM"), f"{show}|{ada_id}") == b"1"
    stopped = shop.ok(shop.client.patch(f"/api/shows/{show}", json={"replay_sales": False}))
    assert stopped["replay_sales"] is False and stopped["sales_close_at"] is not None
    assert shop.client.get(f"/api/holds/{held['hold_id']}", headers=ada).json()["state"] == (
        "released"
    )
    refused = shop.hold(show, ada, "JAM", key="after")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/invalid-transition")
    assert not [f for f in r.hkeys(keys.buyers("JAM")) if f.startswith(show.encode())]
    assert shop.stock("JAM")["available"] == 5
    unknown = shop.client.patch("/api/shows/sh_nothing", json={"replay_sales": False})
    assert unknown.status_code == 404
    bad = shop.client.patch(f"/api/shows/{show}", json={"replay_sales": "yes"})
    assert bad.status_code == 422


def test_a_replay_stops_selling_when_its_time_is_over(shop: Shop) -> None:
    """A replay sells for as long as its recording is kept (``--keep-recordings`` days after
    the end); a show whose end lies further back stops selling at the next closing round."""
    shop.product("OIL", stock=5)
    show = shop.show([{"sku": "OIL"}])
    shop.end(show)
    first_batch(shop, show)
    ada, _, _ = viewer(shop, "ada")
    shop.ok(shop.hold(show, ada, "OIL", key="in-time"), 201)
    days = shop.ok(shop.client.get(f"/api/shows/{show}"))
    assert days["replay_sales"] is True
    with shop.db() as conn:
        conn.execute("UPDATE shows SET ended_at = ? WHERE id = ?", (time.time() - 31 * 86400, show))
        conn.commit()
    assert shop.client.get(f"/api/shows/{show}").json()["replay_sales"] is False

    def stopped() -> bool:
        with shop.db() as conn:
            row = conn.execute("SELECT replay_sales FROM shows WHERE id = ?", (show,)).fetchone()
        return bool(row[0] == 0)

    wait_for(stopped)
    wait_for(lambda: shop.stock("OIL")["held"] == 0)  # the replay's hold is released
    refused = shop.hold(show, ada, "OIL", key="too-late")
    assert refused.status_code == 409


def test_the_cli_sets_replay_sales_and_packs_and_exports_a_batch(
    shop: Shop, server: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``show create --no-replay-sales``, ``show update``, ``orders batch`` and ``orders
    export --batch N``, whose file ``orders ship`` takes as it is."""
    cli = Cli(server, capsys)
    shop.product("INK", stock=5)
    created = cli.json("show", "create", "Ink night", "--host", "Mia", "--no-replay-sales")
    assert created["replay_sales"] is False
    code, out, err = cli("show", "update", created["id"], "--replay-sales")
    assert code == 0 and "sells on its replay" in out, err
    code, _, err = cli("show", "update", created["id"])
    assert code != 0 and "nothing to change" in err

    show = shop.show([{"sku": "INK"}])
    shop.end(show)
    first_batch(shop, show)
    code, _, err = cli("orders", "batch", show)
    assert code != 0 and "no order" in err  # nothing waits yet
    ada, _, _ = viewer(shop, "ada")
    hold = shop.ok(shop.hold(show, ada, "INK", qty=2), 201)
    shop.ok(shop.checkout(hold["hold_id"], ada), 201)
    code, out, err = cli("orders", "batch", show)
    assert code == 0, err
    assert f"Batch 2 of show {show}: 1 parcel(s), 2 unit(s)" in out
    exported = tmp_path / "batch2.csv"
    code, _, err = cli("orders", "export", show, "--batch", "2", "-o", str(exported))
    assert code == 0, err
    (row,) = csv.DictReader(io.StringIO(exported.read_text()))
    assert row["batch"] == "2" and row["units"] == "2"
    row.update(carrier="DHL", tracking_number="JD2")
    tracking = tmp_path / "tracking.csv"
    with tracking.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    code, out, err = cli("orders", "ship", show, str(tracking))
    assert code == 0, err
    stopped = cli.json("show", "update", show, "--no-replay-sales")
    assert stopped["replay_sales"] is False


def test_the_skus_copy_of_a_replay_goes_once_its_sales_are_over(
    shop: Shop, redis_client: redis.Redis
) -> None:
    """Each item keeps the offer of every show selling it in its own slot, a replay's with the
    time its sales end; a show mirrored later with the item drops the offers past their time
    (nothing else would: the replay's show has no step at that moment)."""
    shop.product("OLD", stock=3)
    redis_client.hset(keys.offers("OLD"), "sh_gone", "990|EUR|0|replay|1")
    redis_client.hset(keys.offers("OLD"), "sh_later", "990|EUR|0|replay|99999999999999")
    show = shop.show([{"sku": "OLD"}])
    offers = redis_client.hgetall(keys.offers("OLD"))
    assert set(offers) == {show.encode(), b"sh_later"}
    assert offers[show.encode()].endswith(b"|live|0")
    shop.end(show)
    after = redis_client.hget(keys.offers("OLD"), show)
    assert after is not None and after.split(b"|")[3] == b"replay"
    assert int(after.split(b"|")[4]) > time.time() * 1000
