"""The room bus on a Redis Cluster: sharded pub/sub, one subscriber connection per node.

Used by the room hub (:mod:`livesale.room.hub`) and by the workers' feature follower
(:mod:`livesale.media.origin`).

On one Redis a process follows every room with one pattern subscription. A cluster has no
sharded pattern, and a plain ``PUBLISH`` there goes to every node of the cluster, so the scripts
``SPUBLISH`` each event in its channel's slot (:func:`livesale.lua.shard`) and a process
subscribes to the channels of the rooms it serves: each show's channel and the channels of its
line-up's SKUs (:mod:`livesale.keys`). A channel is followed on the primary that owns its slot.

:meth:`ShardedSubscriber.follow` is called with the channels wanted (on every change of a room,
and once a second by the hub); it subscribes and unsubscribes on each node's connection. A node
connection that fails is dropped and the cluster's map read again on the next call, which
subscribes anew on whichever node owns the slot now; events published meanwhile are lost here,
and clients see the gap in ``seq`` and ask for a snapshot, as on one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from livesale import background

#: What a node, or the cluster's map, failing raises.
_FAILURES = (RedisError, RedisClusterException, OSError)

log = logging.getLogger("livesale.bus")


class _Node:
    """One primary's subscriber connection and the task reading it."""

    def __init__(self, name: str, pubsub: Any) -> None:
        self.name = name
        self.pubsub = pubsub
        self.channels: set[str] = set()
        self.task: asyncio.Task[None] | None = None
        self.failed = False


class ShardedSubscriber:
    """Follows a changing set of sharded channels on a cluster; ``on_message(channel, data)``
    is called for every message, in each channel's order."""

    def __init__(self, cluster: RedisCluster, on_message: Callable[[bytes, bytes], None]) -> None:
        self.cluster = cluster
        self.on_message = on_message
        self._nodes: dict[str, _Node] = {}
        self._lock = asyncio.Lock()
        self._stale = False

    def _owner(self, channel: str) -> Any:
        return self.cluster.get_node_from_key(channel)

    async def follow(self, wanted: Iterable[str]) -> None:
        """Subscribe to ``wanted`` and to nothing else (failures are logged and retried on
        the next call)."""
        async with self._lock:
            if self._stale or any(node.failed for node in self._nodes.values()):
                await self._reset()
            by_node: dict[str, set[str]] = {}
            owners: dict[str, Any] = {}
            try:
                for channel in wanted:
                    owner = self._owner(channel)
                    owners[owner.name] = owner
                    by_node.setdefault(owner.name, set()).add(channel)
            except _FAILURES as exc:
                log.warning("room bus: the cluster's map is not readable: %s", exc)
                self._stale = True
                return
            for name in list(self._nodes):
                if name not in by_node:
                    await self._drop(name)
            for name, channels in by_node.items():
                try:
                    await self._set(owners[name], channels)
                except _FAILURES as exc:
                    log.warning("room bus on node %s: %s; following it again", name, exc)
                    await self._drop(name)
                    self._stale = True

    async def _set(self, owner: Any, channels: set[str]) -> None:
        node = self._nodes.get(owner.name)
        if node is None:
            client = aioredis.Redis(
                host=owner.host, port=owner.port, socket_connect_timeout=5, **self._auth()
            )
            node = self._nodes[owner.name] = _Node(owner.name, client.pubsub())
        new, old = channels - node.channels, node.channels - channels
        # One channel a call: the channels of one call must share a slot.
        for channel in sorted(new):
            await node.pubsub.ssubscribe(channel)
            node.channels.add(channel)
        for channel in sorted(old):
            await node.pubsub.sunsubscribe(channel)
            node.channels.discard(channel)
        if node.task is None and node.channels:
            node.task = asyncio.create_task(self._read(node), name=f"room-shard-{node.name}")

    def _auth(self) -> dict[str, Any]:
        """The credentials the cluster client was given, for the node connections too."""
        kwargs = self.cluster.get_connection_kwargs()
        return {k: kwargs[k] for k in ("username", "password") if kwargs.get(k)}

    async def _read(self, node: _Node) -> None:
        try:
            while True:
                message = await node.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["type"] == "smessage":
                    try:
                        self.on_message(message["channel"], message["data"])
                    except Exception:
                        log.exception("room bus relay failed; continuing")
                background.check_cancelled()
        except asyncio.CancelledError:
            raise
        except _FAILURES as exc:
            log.warning("room bus on node %s: %s; following it again", node.name, exc)
            node.failed = True

    async def _drop(self, name: str) -> None:
        node = self._nodes.pop(name, None)
        if node is None:
            return
        if node.task is not None:
            node.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_FAILURES):
                await node.task
        with contextlib.suppress(*_FAILURES):
            await node.pubsub.aclose()

    async def _reset(self) -> None:
        """Drop every node connection and read the cluster's map of slots again."""
        for name in list(self._nodes):
            await self._drop(name)
        self._stale = False
        with contextlib.suppress(*_FAILURES):
            await self.cluster.nodes_manager.initialize()

    async def aclose(self) -> None:
        async with self._lock:
            for name in list(self._nodes):
                await self._drop(name)
