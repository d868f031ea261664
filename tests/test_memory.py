"""Redis's memory: a limit that never evicts, gauges, and a warning before it is full."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from livesale.embedded_redis import EmbeddedRedis, socket_path
from livesale.errors import Unavailable
from livesale.lua import Scripts, calls
from livesale.memory import RedisMemory
from livesale.metrics import Metrics
from livesale.services import connect_redis


def gauge(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_warns_above_80_percent_of_a_small_maxmemory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a real embedded Redis with a 4 MB maxmemory and noeviction: filling it past 80 %
    logs one warning (not one per check), the gauges follow, a write past the limit is refused
    (a script's refusal comes out as Unavailable) and nothing is evicted; emptied again, one
    line says it is back under."""
    embedded = EmbeddedRedis(tmp_path, maxmemory="4mb")
    url = embedded.start()
    sync = redis.Redis.from_url(url)
    client = redis.asyncio.Redis.from_url(url)
    try:
        assert sync.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        metrics = Metrics()
        watch = RedisMemory(client, metrics)
        with caplog.at_level(logging.INFO, logger="livesale.redis"):
            used, limit = await watch.check()
            assert limit == 4 * 1024 * 1024 and used < 0.8 * limit
            assert not caplog.records
            n = 0
            # Filled past 85 % with room to spare: Redis's own count moves by some tens of KB
            # between two reads (its clients' buffers count in it).
            while sync.info("memory")["used_memory"] < 0.9 * limit:
                sync.set(f"fill:{n}", b"x" * 10_000)
                n += 1
            await watch.check()
            used, _ = await watch.check()
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "maxmemory" in warnings[0].getMessage()
            assert gauge(metrics, "livesale_redis_memory_max_bytes") == limit
            assert gauge(metrics, "livesale_redis_memory_used_bytes") == used >= 0.85 * limit
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                for m in range(1000):
                    sync.set(f"more:{m}", b"y" * 10_000)
            assert sync.exists("fill:0") and sync.dbsize() >= n  # noeviction: nothing dropped
            # Past the limit even for a small write: a script's is refused, and atomically.
            sync.config_set("maxmemory", sync.info("memory")["used_memory"] - 100_000)
            scripts = Scripts(client)
            call = calls.rate(action="hold", client="203.0.113.9", burst=5, per_second=1, cost=1)
            with pytest.raises(Unavailable, match="full"):  # a 503, not a crash
                await scripts.run(call)
            assert not sync.exists(*call.keys)
            sync.flushall()
            await watch.check()
            assert caplog.records[-1].levelno == logging.INFO
            assert "back under" in caplog.records[-1].getMessage()
    finally:
        await client.aclose()
        sync.close()
        embedded.stop()


def test_metrics_show_redis_memory(http: httpx.Client) -> None:
    """/metrics exports what Redis uses and its maxmemory (0 for the tests' unlimited one)."""
    text = http.get("/metrics").text
    assert "# TYPE livesale_redis_memory_used_bytes gauge" in text
    used = next(
        line for line in text.splitlines() if line.startswith("livesale_redis_memory_used_bytes")
    )
    assert float(used.split()[-1]) > 0
    assert "livesale_redis_memory_max_bytes 0.0" in text


def test_serve_gives_the_embedded_redis_its_maxmemory(spawn: Any, tmp_path: Path) -> None:
    """`livesale serve --redis-maxmemory 64mb` starts its Redis with that limit and
    noeviction; the default is 256 MB, and a size that is not one is refused."""
    data = tmp_path / "data"
    server = spawn("--data-dir", str(data), "--redis-maxmemory", "64MB")
    probe = redis.Redis(unix_socket_path=str(socket_path(data)))
    try:
        assert probe.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert probe.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        probe.close()
        server.stop()
    default = spawn("--data-dir", str(tmp_path / "other"))
    probe = redis.Redis(unix_socket_path=str(socket_path(tmp_path / "other")))
    try:
        assert probe.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
    finally:
        probe.close()
        default.stop()
    refused = spawn("--data-dir", str(data), "--redis-maxmemory", "lots", wait=False)
    assert refused.proc is not None and refused.proc.wait(30) == 2
    assert "256mb or 1gb" in refused.output()


async def test_on_a_cluster_the_primary_nearest_its_limit_counts(
    redis_cluster: Any, cluster_url: str
) -> None:
    """On a Redis Cluster the gauges follow the primary that would refuse writes first: the
    one nearest its own maxmemory, not whichever node the client asks by default."""
    host, port = redis_cluster.nodes[1]
    node = redis.Redis(host=host, port=port)
    client = await connect_redis(cluster_url)
    try:
        node.config_set("maxmemory", 64 * 1024 * 1024)
        used, limit = await RedisMemory(client, Metrics()).check()
        assert limit == 64 * 1024 * 1024
        assert abs(used - int(node.info("memory")["used_memory"])) < 1024 * 1024
    finally:
        node.config_set("maxmemory", 0)
        node.close()
        await client.aclose()
