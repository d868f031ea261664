"""Auto-pipelining of the hot scripts: concurrent buy clicks share one Redis round trip.

A flash sale sends thousands of reserve calls in the same second. Sent one by one each needs a
connection of its own (redis-py's pool refuses past its limit) and pays the client's full
per-call cost; queued here they go out as one pipeline of ``EVALSHA`` per event-loop turn,
while the previous pipeline is in flight. Each script is still atomic on its own, so batching
changes no answer, only the cost of asking.

The batch is written to one pooled connection as RESP (the Redis protocol) packed here, and the
replies are read back in order (:func:`livesale._redis.send_packed`): redis-py's general-purpose
packer checks the type of every argument of every call and cost a quarter of a buy click's CPU.
If the installed redis-py lacks what that needs, the batch goes through redis-py's public
``pipeline()`` instead, with the same answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AskError, MovedError, NoScriptError, TryAgainError

from livesale import _redis
from livesale.errors import StoreError
from livesale.lua import ScriptCall, Scripts, is_cluster

log = logging.getLogger("livesale.orders")

#: Most calls sent in one pipeline.
MAX_BATCH = 512
#: Pipelines in flight at once (each holds one pooled connection).
MAX_INFLIGHT = 2

_Call = tuple[ScriptCall, "asyncio.Future[Any]"]


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
    :meth:`livesale.lua.Scripts.run` (Redis errors come out as :class:`StoreError`)."""

    def __init__(self, redis: aioredis.Redis, scripts: Scripts, *, raw: bool | None = None) -> None:
        """``raw``: write packed RESP on the raw wire (default: when the installed redis-py
        allows it, :func:`livesale._redis.raw_pipeline_ok`)."""
        self.redis = redis
        self.scripts = scripts
        self.raw = _redis.raw_pipeline_ok() if raw is None else raw
        #: On a Redis Cluster a batch is split by node, each part on the raw wire to its node
        #: (redis-py's cluster pipeline refuses EVALSHA).
        self.cluster: Any = redis if is_cluster(redis) else None
        self._queue: deque[_Call] = deque()
        self._flushers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, call: ScriptCall) -> Any:
        """Run ``call`` in the next pipeline; its answer, or :class:`StoreError`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((call, future))
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
        if self.cluster is not None:
            await self._send_by_node(batch)
            return
        try:
            if self.raw:
                payload = b"".join(
                    pack_evalsha(self.scripts.sha(call.name), call.keys, call.args)
                    for call, _ in batch
                )
                results, error = await _redis.send_packed(self.redis, payload, len(batch))
            else:
                results, error = await self._send_public(batch)
        except Exception as exc:  # nothing was answered: every caller gets the error
            self._fail(batch, exc)
            return
        await self._answer(batch[: len(results)], results)
        if error is not None:
            # Calls without a reply may or may not have run; their callers get a store error.
            self._fail(batch[len(results) :], error)

    async def _send_by_node(self, batch: list[_Call]) -> None:
        """A batch on a cluster: one raw pipeline per node, sent at once; calls whose slot
        moved meanwhile are answered alone by the cluster client, which follows the move."""
        if not self.raw:
            answers = await asyncio.gather(*(self._alone(call) for call, _ in batch))
            await self._answer(batch, list(answers))
            return
        groups: dict[str, tuple[Any, list[_Call]]] = {}
        for item in batch:
            node = _redis.node_of(self.cluster, item[0].keys[0])
            groups.setdefault(node.name, (node, []))[1].append(item)

        async def send(node: Any, calls: list[_Call]) -> None:
            payload = b"".join(
                pack_evalsha(self.scripts.sha(call.name), call.keys, call.args) for call, _ in calls
            )
            try:
                results, error = await _redis.send_packed_to(node, payload, len(calls))
            except Exception as exc:
                self._fail(calls, exc)
                return
            await self._answer(calls[: len(results)], results)
            if error is not None:
                self._fail(calls[len(results) :], error)

        await asyncio.gather(*(send(node, calls) for node, calls in groups.values()))

    async def _alone(self, call: ScriptCall) -> Any:
        try:
            return await self.scripts.run(call)
        except StoreError as exc:
            return exc

    async def _send_public(self, batch: list[_Call]) -> tuple[list[Any], BaseException | None]:
        """The same batch through redis-py's public pipeline (error replies in place)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for call, _ in batch:
                pipe.evalsha(self.scripts.sha(call.name), len(call.keys), *call.keys, *call.args)
            results = await pipe.execute(raise_on_error=False)
        return list(results), None

    def _fail(self, batch: list[_Call], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(StoreError(f"redis: {exc}"))

    async def _answer(self, batch: list[_Call], results: list[Any]) -> None:
        for (call, future), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError | MovedError | AskError | TryAgainError):
                # Redis restarted or flushed its scripts: load it again, answer this one alone;
                # or (a cluster) its slot is moving: the cluster client follows it.
                result = await self._alone(call)
            if future.done():
                continue  # the caller went away; the script ran all the same
            if isinstance(result, StoreError):
                future.set_exception(result)
            elif isinstance(result, Exception):
                future.set_exception(StoreError(f"redis script {call.name} failed: {result}"))
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        """Wait for the pipelines in flight (their callers are waiting for them)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
