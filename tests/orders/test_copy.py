"""``livesale db copy``: a shop's SQLite store moved into PostgreSQL, whole, then served from
there; never into a database that holds rows, never from a file a server is writing."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import pytest

from livesale.cli import main
from livesale.client import SERVER_FILE
from livesale.config import Settings
from tests.conftest import LiveServer
from tests.orders.conftest import Shop
from tests.orders.test_returns import buy
from tests.postgres import Cluster, connect

# The source is the SQLite file by definition; the target is PostgreSQL.
pytestmark = pytest.mark.sqlite_only


def copy(settings: Settings, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["db", "copy", "--data-dir", str(settings.data_dir), "--to", url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_shop_moves_to_postgresql_and_sells_on(
    settings: Settings,
    postgres_cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Products, ledger, a show, paid orders and keys reach PostgreSQL as they were; the server
    on PostgreSQL answers for them, and new rows (a ledger line, an order) follow on."""
    url = postgres_cluster.database()
    live = LiveServer(settings).start()
    shop = Shop.of(live)
    try:
        shop.product("TEA", 5)
        shop.ok(shop.client.post("/api/stock/TEA/adjust", json={"delta": 3, "reason": "found"}))
        show = shop.show([{"sku": "TEA"}])
        paid = [buy(shop, show, "TEA", 1, name=f"b{n}") for n in range(3)]
        before_orders = shop.ok(shop.client.get("/api/orders"))
        before_ledger = shop.ok(shop.client.get("/api/stock/TEA/ledger"))
    finally:
        shop.close()
        live.stop()

    # A password in the URL (the test cluster trusts its socket, so any does) is never printed.
    secret = url.replace("postgresql:///", "postgresql://postgres:s3cret-pw@/")
    code, said = copy(settings, secret, capsys)
    assert code == 0, said
    assert "serve from it: livesale serve --database-url" in said
    assert "s3cret-pw" not in said

    moved = LiveServer(replace(settings, database_url=url)).start()
    shop = Shop.of(moved)
    try:
        assert shop.ok(shop.client.get("/api/orders")) == before_orders
        assert shop.ok(shop.client.get("/api/stock/TEA/ledger")) == before_ledger
        assert {o["id"] for o in before_orders} >= {p["id"] for p in paid}
        level = shop.stock("TEA")
        assert (level["on_hand"], level["sold"]) == (8, 3)
        # The ledger's ids go on from the copied ones, and the shop sells on.
        shop.ok(shop.client.post("/api/stock/TEA/adjust", json={"delta": -1, "reason": "broken"}))
        buy(shop, show, "TEA", 1, name="after")
        assert shop.stock("TEA")["sold"] == 4
    finally:
        shop.close()
        moved.stop()
    with connect(url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM stock_ledger ORDER BY id").fetchall()]
    assert len(ids) == len(set(ids)) > len(before_ledger)

    # Into a database that holds rows: refused, and it is left as it was.
    code, said = copy(settings, url, capsys)
    assert code != 0 and "already holds rows" in said
    postgres_cluster.drop(url)


def test_refused_while_served_or_without_a_file(
    settings: Settings,
    postgres_cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    """A data directory a live server is writing is not copied; nor one without a store; nor
    into anything but PostgreSQL. Nothing reaches the target."""
    url = postgres_cluster.database()
    code, said = copy(replace(settings, data_dir=tmp_path / "none"), url, capsys)
    assert code != 0 and "does not exist" in said
    live = LiveServer(settings).start()
    live.stop()
    marker = settings.data_dir / SERVER_FILE
    marker.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid()}))
    code, said = copy(settings, url, capsys)
    assert code != 0 and "stop it first" in said
    marker.unlink()
    code, said = copy(settings, "sqlite:///elsewhere.db", capsys)
    assert code != 0 and "postgresql://" in said
    with connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM products").fetchone()[0] == 0
    postgres_cluster.drop(url)
