"""Redis's memory, watched: used and max as Prometheus gauges, and a warning before it is full.

The embedded Redis runs with a ``maxmemory`` and the policy ``noeviction``
(:mod:`livesale.embedded_redis`): when it is full it refuses every write, every buy click
included, rather than drop stock or holds. :meth:`RedisMemory.check` (run every
:data:`CHECK_SECONDS` by the orders component) reads ``INFO memory``, sets the gauges
``livesale_redis_memory_used_bytes`` and ``livesale_redis_memory_max_bytes``, and logs a warning
once the share used passes :data:`WARN_SHARE`, again every :data:`REPEAT_SECONDS` while it
stays there, and a line when it is back under.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from livesale.errors import map_redis_errors
from livesale.lua import is_cluster
from livesale.metrics import Metrics

log = logging.getLogger("livesale.redis")

#: How often the orders component checks.
CHECK_SECONDS = 10.0
#: The share of maxmemory above which the check warns: time to act before writes fail.
WARN_SHARE = 0.8
#: While Redis stays above the mark, the warning comes again this often.
REPEAT_SECONDS = 300.0


async def _nodes(redis: aioredis.Redis) -> list[dict[str, Any]]:
    """``INFO memory`` of the one Redis, or of every primary of a cluster."""
    if not is_cluster(redis):
        return [await redis.info("memory")]
    found = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
    return list(found.values())


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


class RedisMemory:
    """Reads Redis's memory into ``metrics`` and warns above ``warn`` of its maxmemory."""

    def __init__(self, redis: aioredis.Redis, metrics: Metrics, warn: float = WARN_SHARE) -> None:
        self.redis = redis
        self.metrics = metrics
        self.warn = warn
        self._warned_at: float | None = None

    async def _read(self) -> tuple[int, int]:
        """``(used, maxmemory)`` of the Redis, or of the cluster's primary nearest its limit
        (the first to refuse writes)."""
        with map_redis_errors("cannot read Redis's memory"):
            nodes = await _nodes(self.redis)
        figures = [(int(i["used_memory"]), int(i.get("maxmemory", 0))) for i in nodes]
        return max(figures, key=lambda f: (f[0] / f[1] if f[1] else 0.0, f[0]))

    async def check(self) -> tuple[int, int]:
        """Update the gauges and warn if need be; returns ``(used, maxmemory)`` in bytes."""
        used, limit = await self._read()
        self.metrics.redis_memory_used.set(used)
        self.metrics.redis_memory_max.set(limit)
        if limit and used >= self.warn * limit:
            now = time.monotonic()
            if self._warned_at is None or now - self._warned_at >= REPEAT_SECONDS:
                self._warned_at = now
                log.warning(
                    "Redis uses %s of its %s maxmemory (%.0f%%): when full it refuses every"
                    " write, buy clicks included; raise --redis-maxmemory or find what grows",
                    _mib(used),
                    _mib(limit),
                    100 * used / limit,
                )
        elif self._warned_at is not None:
            self._warned_at = None
            log.info("Redis memory is back under %.0f%% of its maxmemory", 100 * self.warn)
        return used, limit
