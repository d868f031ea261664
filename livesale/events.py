"""Room events published through Redis, so every process's room hub sees them.

Every event is a JSON object with a ``type`` (the room message types of DESIGN.md) published on
the show's channel :func:`livesale.keys.show_channel`. Events meant for one buyer only
(``hold``, ``order``) carry ``viewer_id``; the hub delivers those to that viewer's connections
and nobody else. Shapes:

* ``{"type": "stock", "sku": str, "available": int}``
* ``{"type": "sale", "sku": str, "qty": int}``
* ``{"type": "hold", "viewer_id": str, "hold": {...}}`` — a hold made, released or expired
* ``{"type": "order", "viewer_id": str, "order": {...}}`` — an order's state changed
* ``{"type": "show", ...}`` — show state (live, paused, resumed, ended)
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livesale import keys
from livesale.errors import StoreError

_encode = msgspec.json.Encoder().encode


async def publish(redis: aioredis.Redis, show_id: str, event: dict[str, Any]) -> None:
    """Publish ``event`` on the show's channel (fire and forget: no subscriber is fine)."""
    try:
        await redis.publish(keys.show_channel(show_id), _encode(event))
    except RedisError as exc:
        raise StoreError(f"redis publish: {exc}") from exc
