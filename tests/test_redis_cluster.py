"""The throw-away Redis Cluster (:mod:`tests.redis_cluster`) is a real one: keys spread over
its masters by hash tag, it refuses a script across slots, and sharded pub/sub delivers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterCrossSlotError

from livesale.errors import ConfigError
from livesale.lua import is_cluster
from livesale.services import cluster_url, connect_redis
from tests.redis_cluster import Cluster

TAGS = "abcdefgh"


@pytest.fixture
def cluster(redis_cluster: Cluster) -> Cluster:
    return redis_cluster


@pytest.fixture
def client(cluster: Cluster) -> Iterator[RedisCluster]:
    cluster.flush()
    host, port = cluster.nodes[0]
    rc = RedisCluster(host=host, port=port, decode_responses=True)
    yield rc
    rc.close()


def test_nodes_and_url(cluster: Cluster) -> None:
    assert len(cluster.nodes) == 3
    assert all(host == "127.0.0.1" for host, _ in cluster.nodes)
    assert cluster.url == f"redis+cluster://127.0.0.1:{cluster.nodes[0][1]}"


def test_hash_tags_spread_over_masters(client: RedisCluster) -> None:
    keys = [f"{{{tag}}}:key" for tag in TAGS]
    masters = {client.get_node_from_key(key).name for key in keys}
    assert len(masters) >= 2
    for key in keys:
        assert client.keyslot(key) == client.keyslot(key.replace(":key", ":other"))
        assert client.set(key, key.upper())
    assert [client.get(key) for key in keys] == [key.upper() for key in keys]


def test_script_across_slots_is_refused(cluster: Cluster, client: RedisCluster) -> None:
    script = "return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}"
    client.set("{a}:one", "1")
    client.set("{a}:two", "2")
    assert client.eval(script, 2, "{a}:one", "{a}:two") == ["1", "2"]
    assert client.keyslot("{a}:one") != client.keyslot("{b}:one")
    # Straight to the node that owns {a}: redis-py's cluster client would refuse on its own.
    # redis-py turns the server's ``CROSSSLOT ...`` error into ClusterCrossSlotError.
    node = client.get_node_from_key("{a}:one")
    direct = redis.Redis(host=node.host, port=node.port, decode_responses=True)
    try:
        with pytest.raises(ClusterCrossSlotError):
            direct.eval(script, 2, "{a}:one", "{b}:one")
    finally:
        direct.close()


def test_sharded_pubsub_delivers(client: RedisCluster) -> None:
    channel = "{c}:events"
    pubsub = client.pubsub()
    try:
        pubsub.ssubscribe(channel)
        confirmation = pubsub.get_sharded_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "ssubscribe"
        assert client.spublish(channel, "hello") == 1
        deadline = time.monotonic() + 5.0
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
        assert message is not None
        assert message["type"] == "smessage"
        assert message["channel"] == channel
        assert message["data"] == "hello"
    finally:
        pubsub.close()


def test_flush_empties_every_master(cluster: Cluster, client: RedisCluster) -> None:
    keys = [f"{{{tag}}}:gone" for tag in TAGS]
    for key in keys:
        client.set(key, "x")
    cluster.flush()
    assert [client.exists(key) for key in keys] == [0] * len(keys)


async def test_livesale_connects_to_a_cluster_by_its_scheme(cluster: Cluster) -> None:
    """``redis+cluster://`` (any node) is a cluster client that knows every master; an
    unreachable one is one line without the URL's password."""
    client = await connect_redis(cluster.url)
    try:
        assert is_cluster(client)
        assert len(client.get_primaries()) == 3  # type: ignore[attr-defined]
    finally:
        await client.aclose()
    assert cluster_url("rediss+cluster://u:p@h:1/0") == "rediss://u:p@h:1/0"
    assert cluster_url("redis://h:1") is None
    with pytest.raises(ConfigError) as refused:
        await connect_redis("redis+cluster://:hunter2@127.0.0.1:1")
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)
