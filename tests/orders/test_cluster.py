"""The shop on a Redis Cluster: two livesale processes on one store of record and a real
3-master cluster (``--redis-url redis+cluster://...``) sell a rush once per unit, and a node
that loses its data costs a moment of 503s, never an oversold unit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import RedisCluster as SyncCluster

from livesale import keys
from livesale.config import Settings
from livesale.lua import Scripts
from livesale.orders.holds import HoldStore
from tests.conftest import LiveServer
from tests.orders.conftest import CHECKOUT, Shop, burst
from tests.redis_cluster import Cluster

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def nodes(settings: Settings, cluster_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two livesale processes' worth of servers on the cluster and one store of record."""
    on_cluster = replace(settings, redis_url=cluster_url)
    a = LiveServer(on_cluster).start()
    b = LiveServer(on_cluster, api_key=a.api_key).start()
    yield a, b
    b.stop()
    a.stop()


@pytest.fixture
def cluster_client(redis_cluster: Cluster) -> Iterator[SyncCluster]:
    host, port = redis_cluster.nodes[0]
    client = SyncCluster(host=host, port=port)
    yield client
    client.close()


def test_a_rush_on_two_servers_sells_each_unit_once(
    nodes: tuple[LiveServer, LiveServer], cluster_client: SyncCluster
) -> None:
    """400 buyers, half on each server, for 40 units of a SKU whose slot is on another master
    than the show's (a click's two steps cross nodes): exactly 40 holds, each bought once, and
    the store of record agrees with the cluster."""
    a, b = nodes
    shop = Shop.of(a)
    show = shop.show([], start=False)
    sku = _sku_away_from(cluster_client, keys.show(show), "RUSH")
    shop.product(sku, stock=40)
    shop.ok(shop.client.put(f"/api/shows/{show}/lineup", json=[{"sku": sku}]))
    shop.ok(shop.client.post(f"/api/shows/{show}/start"))
    buyers = shop.viewers(400)
    click = {"sku": sku, "qty": 1, "idempotency_key": "k"}
    path = f"/api/shows/{show}/holds"

    async def rush() -> list[Any]:
        return list(
            await asyncio.gather(
                burst(a.url, [("POST", path, click, h) for h in buyers[::2]]),
                burst(b.url, [("POST", path, click, h) for h in buyers[1::2]]),
            )
        )

    on_a, on_b = asyncio.run(rush())
    answers = list(zip(on_a, buyers[::2], strict=True)) + list(zip(on_b, buyers[1::2], strict=True))
    assert sorted(r.status_code for r, _ in answers) == [201] * 40 + [409] * 360
    assert all(r.json()["type"].endswith("sold-out") for r, _ in answers if r.status_code == 409)
    level = shop.stock(sku)
    assert (level["available"], level["held"], level["sold"]) == (0, 40, 0)

    # Every hold is bought, each on the server it was not made on, or on the same one.
    holds = [(r.json()["hold_id"], h) for r, h in answers if r.status_code == 201]
    checkouts = [("POST", f"/api/holds/{hid}/checkout", CHECKOUT, h) for hid, h in holds]
    paid = asyncio.run(burst(b.url, checkouts))
    assert [p.status_code for p in paid] == [201] * 40, [p.body for p in paid]
    assert len({p.json()["id"] for p in paid}) == 40
    expected = {"sku": sku, "on_hand": 40, "available": 0, "held": 0, "sold": 40}
    assert shop.stock(sku) == expected
    assert shop.sold_in_db(sku) == 40
    stored = cluster_client.hgetall(keys.stock(sku))
    assert (int(stored[b"sold"]), int(stored[b"held"]), int(stored[b"available"])) == (40, 0, 0)
    shop.close()


def _sku_away_from(cluster: SyncCluster, key: str, stem: str) -> str:
    """A SKU named ``stem-N`` whose slot is on another master than ``key``'s."""
    taken = cluster.get_node_from_key(key).name
    return next(
        f"{stem}-{n}"
        for n in range(100)
        if cluster.get_node_from_key(keys.stock(f"{stem}-{n}")).name != taken
    )


def test_a_node_that_lost_its_data_is_rebuilt_before_it_sells(
    nodes: tuple[LiveServer, LiveServer], cluster_client: SyncCluster
) -> None:
    """The master holding a SKU's slot comes back empty while the shop's marker lives on
    another: the next click on that SKU finds no ready mark, answers 503, and stock is rebuilt
    from the store of record, sold units included; nothing is oversold after."""
    a, _ = nodes
    shop = Shop.of(a)
    sku = _sku_away_from(cluster_client, keys.STOCK_READY, "LOST")
    shop.product(sku, stock=5)
    show = shop.show([{"sku": sku}])
    buyers = shop.viewers(8)
    for n, buyer in enumerate(buyers[:3]):
        hold = shop.ok(shop.hold(show, buyer, sku, key=f"k{n}"), 201)
        shop.ok(shop.checkout(hold["hold_id"], buyer), 201)
    node = cluster_client.get_node_from_key(keys.stock(sku))
    with redis.Redis(host=node.host, port=node.port) as lost:
        lost.flushall()
    assert cluster_client.exists(keys.STOCK_READY)  # the shop's marker lives on elsewhere
    refused = shop.hold(show, buyers[3], sku, key="after")
    assert refused.status_code == 503, refused.text
    deadline = time.monotonic() + 60  # catches a hang only
    while (answer := shop.hold(show, buyers[3], sku, qty=2, key="after")).status_code == 503:
        assert time.monotonic() < deadline, "stock was never rebuilt"
        time.sleep(0.1)
    assert answer.status_code == 201, answer.text
    expected = {"sku": sku, "on_hand": 5, "available": 0, "held": 2, "sold": 3}
    assert shop.stock(sku) == expected
    assert shop.hold(show, buyers[4], sku, key="late").status_code == 409
    shop.close()


async def test_a_rush_on_a_cold_sku_writes_the_sweepers_index_once(cluster_url: str) -> None:
    """The first clicks of a rush on a SKU all want it in the sweepers' index: one write goes
    to the cluster for all of them (a cluster client refuses, not queues, past its
    connections to a node: 200 writes at once on 8 connections would be 503s)."""
    node = cluster_url.replace("redis+cluster://", "redis://")
    client = AsyncCluster.from_url(node, max_connections=8)
    try:
        holds = HoldStore(client, Scripts(client), hold_seconds=300)  # type: ignore[arg-type]
        await asyncio.gather(*(holds._index("COLD") for _ in range(200)))
        assert await client.zscore(keys.HOLD_SKUS, "COLD") > time.time() * 1000
        assert not holds._indexing
    finally:
        await client.aclose()
