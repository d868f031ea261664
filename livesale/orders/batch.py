"""Auto-pipelining of the hot scripts: concurrent buy clicks share one Redis round trip.

A flash sale sends thousands of reserve calls in the same second. Sent one by one each needs a
connection of its own (redis-py's pool refuses past its limit) and pays the client's full
per-call cost; queued here they go out as one pipeline of ``EVALSHA`` per event-loop turn,
while the previous pipeline is in flight. Each script is still atomic on its own, so batching
changes no answer, only the cost of asking.

The batch is written to one pooled connection as RESP (the Redis protocol) packed here, and the
replies are read back in order: redis-py's general-purpose packer checks the type of every
argument of every call and cost a quarter of a buy click's CPU.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from livesale.errors import StoreError
from livesale.scripts import Scripts

log = logging.getLogger("livesale.orders")

#: Most calls sent in one pipeline.
MAX_BATCH = 512
#: Pipelines in flight at once (each holds one pooled connection).
MAX_INFLIGHT = 2

_Call = tuple[str, list[str], list[Any], "asyncio.Future[Any]"]


def _bulk(value: Any) -> bytes:
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, int) and not isinstance(value, bool):
        data = b"%d" % value
    elif isinstance(value, float):
        data = repr(value).encode()
    else:
        raise TypeError(f"cannot send {type(value).__name__} to Redis")
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack_evalsha(sha: str, keys: list[str], args: list[Any]) -> bytes:
    """``EVALSHA sha numkeys key... arg...`` as a RESP array of bulk strings."""
    parts = [
        b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)),
        _bulk(sha),
        _bulk(len(keys)),
    ]
    parts.extend(_bulk(k) for k in keys)
    parts.extend(_bulk(a) for a in args)
    return b"".join(parts)


class ScriptBatcher:
    """Queues script calls and flushes them as pipelines; ``call`` answers like
    :meth:`livesale.scripts.Scripts.call` (Redis errors come out as :class:`StoreError`)."""

    def __init__(self, redis: aioredis.Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self._queue: deque[_Call] = deque()
        self._flushers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((name, keys, args, future))
        if self._flushers < MAX_INFLIGHT:
            self._flushers += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                await self._send(batch)
        finally:
            self._flushers -= 1

    async def _send(self, batch: list[_Call]) -> None:
        pool = self.redis.connection_pool
        try:
            payload = b"".join(
                pack_evalsha(self.scripts.get(name).sha, keys, args)
                for name, keys, args, _ in batch
            )
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._fail(batch, exc)
            return
        results: list[Any] = []
        error: Exception | None = None
        try:
            await conn.send_packed_command(payload)
            for _ in batch:
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
        finally:
            await pool.release(conn)
        await self._answer(batch[: len(results)], results)
        if error is not None:
            # Calls without a reply may or may not have run; their callers get a store error.
            self._fail(batch[len(results) :], error)

    def _fail(self, batch: list[_Call], exc: BaseException) -> None:
        for *_, future in batch:
            if not future.done():
                future.set_exception(StoreError(f"redis: {exc}"))

    async def _answer(self, batch: list[_Call], results: list[Any]) -> None:
        for (name, keys, args, future), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):
                # Redis restarted or flushed its scripts: load it again, answer this one alone.
                try:
                    result = await self.scripts.call(name, keys, args)
                except StoreError as exc:
                    result = exc
            if future.done():
                continue  # the caller went away; the script ran all the same
            if isinstance(result, StoreError):
                future.set_exception(result)
            elif isinstance(result, Exception):
                future.set_exception(StoreError(f"redis script {name} failed: {result}"))
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        """Wait for the pipelines in flight (their callers are waiting for them)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
