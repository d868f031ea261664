"""Rate limits per client address, shared by every process: one atomic Redis script
(``rate.lua``, a token bucket on Redis's clock) per request that counts. The buy click, the hot
path, takes its bucket inside ``reserve.lua`` instead, in the click's one script call.

A refused request is a ``429`` problem with ``Retry-After`` (whole seconds) and
``retry_after_ms``; the room socket turns it into an ``error`` frame with the code
``rate_limited``. The numbers are settings (:data:`livesale.config.RATE_LIMITS`).
"""

from __future__ import annotations

import math

from livesale import services as svc
from livesale.config import Settings
from livesale.errors import RateLimited, map_redis_errors
from livesale.lua import calls


async def check(services: svc.Services, action: str, client: str) -> None:
    """Take one request of ``action`` from ``client``'s allowance, or raise
    :class:`RateLimited`."""
    burst, per_second = bucket(services.settings, action)
    call = calls.rate(action=action, client=client, burst=burst, per_second=per_second, cost=1)
    with map_redis_errors():
        allowed, retry_ms = await services.scripts.run(call)
    if not int(allowed):
        raise refusal(action, int(retry_ms))


def bucket(settings: Settings, action: str) -> tuple[int, float]:
    """The token bucket of ``action`` as the scripts take it: ``(burst, refill per second)``."""
    burst, seconds = settings.rate(action)
    return burst, burst / seconds


def refusal(action: str, retry_ms: int) -> RateLimited:
    """The 429 of a request of ``action`` refused for ``retry_ms`` (the buy click takes its
    rate limit inside ``reserve.lua`` and raises this too)."""
    wait = max(1, math.ceil(retry_ms / 1000))
    return RateLimited(
        f"too many {action} requests from your network; try again in {wait} s",
        retry_after=wait,
        retry_after_ms=retry_ms,
    )
