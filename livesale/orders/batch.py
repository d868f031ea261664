"""Auto-pipelining of the hot scripts: concurrent buy clicks share one Redis round trip.

A flash sale sends thousands of reserve calls in the same second. Sent one by one each needs a
connection of its own (redis-py's pool refuses past its limit) and pays the client's full
per-call cost; queued here they go out as one pipeline of ``EVALSHA`` per event-loop turn,
while the previous pipeline is in flight. Each script is still atomic on its own, so batching
changes no answer, only the cost of asking.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from livesale.errors import StoreError
from livesale.scripts import Scripts

log = logging.getLogger("livesale.orders")

#: Most calls sent in one pipeline.
MAX_BATCH = 512
#: Pipelines in flight at once (each holds one pooled connection).
MAX_INFLIGHT = 2

_Call = tuple[str, list[str], list[Any], "asyncio.Future[Any]"]


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
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, keys, args, _ in batch:
                    pipe.evalsha(self.scripts.get(name).sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(StoreError(f"redis: {exc}"))
            return
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
