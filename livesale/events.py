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

*Sequenced* types (:data:`SEQUENCED`, e.g. ``show`` and ``lineup``) take
the show's next sequence number: :func:`publish` increments the counter and publishes in one
script, so every process sees them in the same order with the same numbers.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from livesale import keys
from livesale.errors import map_redis_errors
from livesale.lua import calls, is_cluster, sources_for

#: Events that take a sequence number, the same on every process and for every viewer.
SEQUENCED: frozenset[str] = frozenset(
    {"show", "lineup", "featured", "requests", "chat", "chat_deleted", "slow_mode"}
)


class Msg(msgspec.Struct, tag_field="type", frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every room message; the subclass's ``tag`` is its ``type``."""


class Event(Msg, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A server frame. ``seq`` is encoded right after ``type`` (the bus stamps it there)."""

    seq: int = 0


encoder = msgspec.json.Encoder()


async def _publish_sequenced(redis: aioredis.Redis, show_id: str, body: bytes) -> int:
    call = calls.publish_seq(show_id=show_id, body=body)
    args = (len(call.keys), *call.keys, *call.args)
    sources, shas = sources_for(redis)
    with map_redis_errors("redis publish"):
        try:
            return int(await redis.evalsha(shas[call.name], *args))
        except NoScriptError:
            return int(await redis.eval(sources[call.name], *args))


async def send(redis: aioredis.Redis, channel: str, body: bytes) -> None:
    """Publish ``body`` on ``channel`` as is: by sharded pub/sub on a Redis Cluster."""
    with map_redis_errors("redis publish"):
        if is_cluster(redis):
            await redis.spublish(channel, body)
        else:
            await redis.publish(channel, body)


async def publish(redis: aioredis.Redis, show_id: str, event: dict[str, Any]) -> None:
    """Publish ``event`` on the show's channel (no subscriber is fine). A sequenced type gets
    the show's next sequence number; any ``seq`` the caller put in is replaced."""
    if event.get("type") in SEQUENCED:
        body = {"type": event["type"], "seq": 0}
        body.update((k, v) for k, v in event.items() if k not in ("type", "seq"))
        await _publish_sequenced(redis, show_id, encoder.encode(body))
        return
    await send(redis, keys.show_channel(show_id), encoder.encode(event))


async def publish_event(redis: aioredis.Redis, show_id: str, event: Event) -> int:
    """Publish an :class:`Event`; returns its sequence number (0 for an unsequenced type,
    which is published as is)."""
    body = encoder.encode(event)
    if event.__struct_config__.tag in SEQUENCED:
        return await _publish_sequenced(redis, show_id, body)
    await send(redis, keys.show_channel(show_id), body)
    return 0
