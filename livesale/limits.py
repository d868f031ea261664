"""Rate limits per client address, shared by every process: one atomic Redis script
(``rate.lua``, a token bucket on Redis's clock) per request that counts.

A refused request is a ``429`` problem with ``Retry-After`` (whole seconds) and
``retry_after_ms``; the room socket turns it into an ``error`` frame with the code
``rate_limited``. The numbers are settings (:data:`livesale.config.RATE_LIMITS`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from livesale import services as svc
from livesale.errors import RateLimited, map_redis_errors
from livesale.lua import ScriptCall, calls

Runner = Callable[[ScriptCall], Awaitable[Any]]


async def check(
    services: svc.Services, action: str, client: str, *, run: Runner | None = None
) -> None:
    """Take one request of ``action`` from ``client``'s allowance, or raise
    :class:`RateLimited`. ``run``: how the call is sent (the buy path batches it)."""
    burst, seconds = services.settings.rate(action)
    call = calls.rate(action=action, client=client, burst=burst, per_second=burst / seconds, cost=1)
    with map_redis_errors():
        allowed, retry_ms = await (run or services.scripts.run)(call)
    if not int(allowed):
        wait = max(1, math.ceil(int(retry_ms) / 1000))
        raise RateLimited(
            f"too many {action} requests from your network; try again in {wait} s",
            retry_after=wait,
            retry_after_ms=int(retry_ms),
        )
