"""Work that one process at a time must do, among all the processes sharing a Redis.

Closing shows (captures), delivering webhooks and recovering stalled orders must not run twice
at once: two workers would capture an order's money or post a delivery twice. Every process
asks for the same Redis lock (redis-py's :class:`~redis.asyncio.lock.Lock`, a key with a
random token and a lifetime); the one holding it runs those duties and renews it every
:data:`RENEW_SECONDS`. If that process dies, its lock lapses after :data:`TTL_SECONDS` and
another takes it on its next try.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from livesale import background, keys

log = logging.getLogger("livesale")

#: How long the lock outlives its holder's last renewal.
TTL_SECONDS = 10.0
#: How often the holder renews it, and the others try to take it.
RENEW_SECONDS = 2.0


class Lease:
    """This process's claim on the duties; :attr:`held` says whether to run them now."""

    def __init__(self, redis: aioredis.Redis, name: str = keys.DUTIES) -> None:
        self._lock = redis.lock(name, timeout=TTL_SECONDS, blocking=False, thread_local=False)
        self.held = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try at once (so a lone process runs its duties from its first tick), then keep
        trying or renewing in the background."""
        await self._try()
        self._task = asyncio.get_running_loop().create_task(self._keep(), name="lease")

    async def _try(self) -> None:
        try:
            if self.held:
                await self._lock.reacquire()
            else:
                self.held = bool(await self._lock.acquire())
                if self.held:
                    log.info("this process runs the shared duties (closings, webhooks)")
        except LockError:
            log.warning("the shared duties' lease was lost; another process takes them")
            self.held = False
        except RedisError as exc:
            log.warning("the shared duties' lease cannot be renewed: %s", exc)
            self.held = False

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await self._try()
            background.check_cancelled()

    async def aclose(self) -> None:
        if self._task is not None:
            await background.stop([self._task])
        if self.held:
            self.held = False
            try:
                await self._lock.release()
            except (LockError, RedisError):
                pass  # it lapses by itself
