"""Room events published through Redis, so every process's room hub sees them.

Every event is a JSON object with a ``type`` (the room message types of DESIGN.md) published on
the show's channel :func:`livesale.keys.show_channel`. Shapes on the channel:

* ``{"type": "stock", "sku": str, "available": int}``
* ``{"type": "sale", "sku": str, "qty": int}``
* ``{"type": "hold", "viewer_id": str, "hold": {...}}`` — a hold made, released or expired
* ``{"type": "order", "viewer_id": str, "order": {...}}`` — an order's state changed
* ``{"type": "show", "state": "live"|"ended"|..., "paused": bool}`` — state, paused, resumed
* ``{"type": "lineup", "lineup": {...}}`` — the whole line-up after a change

Events meant for one buyer only (``hold``, ``order``) carry ``viewer_id``; the hub delivers them
to that viewer's connections and nobody else. ``stock`` and ``sale`` are coalesced per show by
each hub before they reach viewers. They may also be published straight from Lua with
``PUBLISH`` on the same channel and the same shapes.

*Sequenced* types (:data:`livesale.room.messages.SEQUENCED`, e.g. ``show`` and ``lineup``) take
the show's next sequence number: :func:`publish` increments the counter and publishes in one
script, so every process sees them in the same order with the same numbers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from livesale import keys
from livesale.errors import StoreError
from livesale.room.lua import PUBLISH_SEQ
from livesale.room.messages import SEQUENCED, Event, encoder

_encode = msgspec.json.Encoder().encode
_PUBLISH_SEQ_SHA = hashlib.sha1(PUBLISH_SEQ.encode()).hexdigest()


async def _publish_sequenced(redis: aioredis.Redis, show_id: str, body: bytes) -> int:
    args = (2, keys.show_seq(show_id), keys.show_channel(show_id), body)
    try:
        try:
            return int(await redis.evalsha(_PUBLISH_SEQ_SHA, *args))
        except NoScriptError:
            return int(await redis.eval(PUBLISH_SEQ, *args))
    except RedisError as exc:
        raise StoreError(f"redis publish: {exc}") from exc


async def publish(redis: aioredis.Redis, show_id: str, event: dict[str, Any]) -> None:
    """Publish ``event`` on the show's channel (no subscriber is fine). A sequenced type gets
    the show's next sequence number; any ``seq`` the caller put in is replaced."""
    try:
        if event.get("type") in SEQUENCED:
            body = {"type": event["type"], "seq": 0}
            body.update((k, v) for k, v in event.items() if k not in ("type", "seq"))
            await _publish_sequenced(redis, show_id, _encode(body))
        else:
            await redis.publish(keys.show_channel(show_id), _encode(event))
    except RedisError as exc:
        raise StoreError(f"redis publish: {exc}") from exc


async def publish_event(redis: aioredis.Redis, show_id: str, event: Event) -> int:
    """Publish a room :class:`~livesale.room.messages.Event`; returns its sequence number
    (0 for an unsequenced type, which is published as is)."""
    body = encoder.encode(event)
    if event.__struct_config__.tag in SEQUENCED:
        return await _publish_sequenced(redis, show_id, body)
    try:
        await redis.publish(keys.show_channel(show_id), body)
    except RedisError as exc:
        raise StoreError(f"redis publish: {exc}") from exc
    return 0
