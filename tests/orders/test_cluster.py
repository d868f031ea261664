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
import redis.asyncio as aioredis
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


def _evalsha_calls(urls: list[str]) -> int:
    """EVALSHA calls the Redis servers at ``urls`` have answered since their stats reset."""
    total = 0
    for url in urls:
        with redis.Redis.from_url(url) as node:
            total += int(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    return total


async def _one_unit_on_sale(client: Any, show: str, sku: str) -> None:
    """A live show selling one unit of ``sku``, its mirrors written as the stores write them."""
    await client.hset(keys.show(show), mapping={"state": "live", "replay": 0})
    await client.hset(keys.lineup(show), sku, "1990|EUR|0")
    await client.hset(keys.offers(sku), show, "1990|EUR|0|live|0")
    stock = {"on_hand": 1, "available": 1, "held": 0, "sold": 0, "ready": 1}
    await client.hset(keys.stock(sku), mapping=stock)


@pytest.mark.parametrize("where", ["single", "cluster"])
async def test_a_click_is_one_script_call_on_a_single_redis_and_two_on_a_cluster(
    where: str, request: pytest.FixtureRequest
) -> None:
    """On a single Redis a buy click is one script call: both steps and the sweepers' index in
    one EVALSHA, and a refused click claims nothing. A cluster cannot run it (its keys span slots):
    there a hold is two calls (admit, reserve) and a refusal three (with unadmit)."""
    client: Any
    if where == "single":
        urls = [request.getfixturevalue("redis_url")]
        client = aioredis.Redis.from_url(urls[0])
    else:
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        request.getfixturevalue("cluster_url")  # emptied
        urls = [f"redis://{host}:{port}" for host, port in cluster.nodes]
        client = AsyncCluster.from_url(urls[0])
    calls_of = (1, 1) if where == "single" else (2, 3)
    try:
        holds = HoldStore(client, Scripts(client), 300, address_multiple=2, live_holds=3)
        await holds.scripts.load()
        assert holds.one_call is (where == "single")
        await _one_unit_on_sale(client, "sh_1", "BALM")
        for url in urls:
            with redis.Redis.from_url(url) as node:
                node.config_resetstat()
        made = await holds.reserve("sh_1", "vw_1", "BALM", 1, "k1", client="10.0.0.1")
        assert made.status == "ok" and made.hold is not None
        assert _evalsha_calls(urls) == calls_of[0]
        assert await client.zscore(keys.HOLD_SKUS, "BALM") > time.time() * 1000 + 300_000
        refused = await holds.reserve("sh_1", "vw_2", "BALM", 1, "k2", client="10.0.0.1")
        assert refused.status == "sold_out"
        assert _evalsha_calls(urls) == sum(calls_of)
        # The refusal gave back the first step's claim: the key is free, the hold not live.
        assert not await client.exists(keys.idempotency("sh_1", "vw_2", "k2"))
        live = keys.address_live_holds("sh_1", "10.0.0.1")
        assert await client.zrange(live, 0, -1) == [made.hold.hold_id.encode()]
        again = await holds.reserve("sh_1", "vw_1", "BALM", 1, "k1", client="10.0.0.1")
        assert again.status == "existing" and again.hold == made.hold
        await holds.batcher.aclose()
    finally:
        await client.aclose()
