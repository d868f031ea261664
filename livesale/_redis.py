"""The one place livesale drives redis-py below its client API: the script pipeline's raw wire.

:mod:`livesale.lua.pipeline` packs a batch of ``EVALSHA`` calls as RESP itself and needs to
write those bytes to one pooled connection and read the replies back in order. redis-py has no
public API for that, so this adapter takes a connection from the pool, sends the packed bytes
and reads replies through the connection's own methods. Every name it relies on is in
:data:`PRIVATE_NAMES`; :func:`raw_pipeline_ok` checks them once against the installed redis-py
and, if one moved, logs one line and the pipeline falls back to redis-py's public
``pipeline()`` (slower, same answers).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger("livesale.orders")

#: Every redis-py name below the client API this adapter uses: (owner, name, what for).
PRIVATE_NAMES: tuple[tuple[type[Any], str, str], ...] = (
    (ConnectionPool, "get_connection", "take a connection out of the client's pool"),
    (ConnectionPool, "release", "give it back"),
    (AbstractConnection, "send_packed_command", "write pre-packed RESP bytes"),
    (AbstractConnection, "read_response", "read one reply (an error reply is raised)"),
    (AbstractConnection, "disconnect", "drop a connection left out of step"),
    (RedisCluster, "get_node_from_key", "find the cluster node that owns a key's slot"),
    (ClusterNode, "acquire_connection", "take a connection to that node"),
    (ClusterNode, "release", "give it back"),
)


def check(names: tuple[tuple[type[Any], str, str], ...] | None = None) -> list[str]:
    """What is missing or changed in the installed redis-py; empty when all is in place.
    (Default: :data:`PRIVATE_NAMES`.)"""
    names = PRIVATE_NAMES if names is None else names
    problems = [
        f"redis-py's {owner.__name__}.{name} is gone ({why})"
        for owner, name, why in names
        if not callable(getattr(owner, name, None))
    ]
    if not problems:
        taking = inspect.signature(ConnectionPool.get_connection).parameters
        required = [
            p
            for p in list(taking.values())[1:]
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if required:
            problems.append("redis-py's ConnectionPool.get_connection() needs arguments")
    return problems


@functools.cache
def raw_pipeline_ok() -> bool:
    """True when the raw wire can be used; logs once, in one line, when it cannot."""
    problems = check()
    if problems:
        log.warning(
            "script pipeline: using redis-py's public pipeline instead of the raw wire: %s",
            "; ".join(problems),
        )
    return not problems


async def send_packed(
    redis: aioredis.Redis, payload: bytes, replies: int
) -> tuple[list[Any], BaseException | None]:
    """Write ``payload`` (``replies`` packed commands) on one pooled connection and read the
    replies in order.

    Returns the replies read (an error reply is a ``ResponseError`` in its place) and, if the
    connection failed part way, that error: the calls without a reply may or may not have run.
    A connection that may be out of step (an error, a cancellation) is disconnected before it
    goes back to the pool.
    """
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await _exchange(conn, payload, replies)
    finally:
        await pool.release(conn)


def node_of(cluster: RedisCluster, key: str) -> ClusterNode:
    """The primary of a cluster that owns ``key``'s slot, as the client's map has it."""
    node = cluster.get_node_from_key(key)
    if node is None:
        raise RedisError(f"no cluster node owns the slot of {key!r}")
    return node


async def send_packed_to(
    node: ClusterNode, payload: bytes, replies: int
) -> tuple[list[Any], BaseException | None]:
    """:func:`send_packed` on one connection to a cluster node (every command's keys in a slot
    of that node's; a reply ``MOVED`` if the map changed since)."""
    conn = node.acquire_connection()
    try:
        return await _exchange(conn, payload, replies)
    finally:
        node.release(conn)


async def _exchange(
    conn: AbstractConnection, payload: bytes, replies: int
) -> tuple[list[Any], BaseException | None]:
    results: list[Any] = []
    error: BaseException | None = None
    try:
        await conn.send_packed_command(payload)
        for _ in range(replies):
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:  # this call's error reply; the next ones follow
                results.append(exc)
    except (RedisError, OSError) as exc:
        await conn.disconnect()
        error = exc
    except BaseException:
        # Cancelled with replies unread: the connection is out of step, never reuse it.
        await conn.disconnect()
        raise
    return results, error
