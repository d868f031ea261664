"""Every Lua script livesale runs, in one registry: ``livesale/lua/*.lua``, by file stem.

A script names the preludes it needs on its first line (``--! prelude _clock _shelf``); the
registry puts their text before the script's own, so the lines several scripts share are
written once (``_clock.lua``: Redis's clock; ``_shelf.lua``: one SKU's keys and ending a hold;
``_room.lua``: sequence numbers and event stamps). Files whose name starts with ``_`` are
preludes, never run alone. Scripts build no keys: every key comes in ``KEYS``, built by the
typed call builders of :mod:`livesale.lua.calls` from :mod:`livesale.keys`.

:class:`Scripts` runs them by SHA (``EVALSHA``); redis-py's ``AsyncScript`` loads a script
again when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``), so callers never
see that case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from livesale.errors import StoreError, map_redis_errors

_DIRECTIVE = "--! prelude"


def compose(files: Mapping[str, str]) -> dict[str, str]:
    """Script name -> full source, from the ``.lua`` files' text by stem: each script's
    preludes (named on its first line) put before its own lines; preludes are not scripts."""
    preludes = {name: text for name, text in files.items() if name.startswith("_")}
    sources: dict[str, str] = {}
    for name, text in sorted(files.items()):
        if name.startswith("_"):
            continue
        first, _, rest = text.partition("\n")
        parts: list[str] = []
        if first.startswith(_DIRECTIVE):
            for wanted in first[len(_DIRECTIVE) :].split():
                if wanted not in preludes:
                    raise StoreError(f"lua/{name}.lua wants the unknown prelude {wanted!r}")
                parts.append(preludes[wanted])
        else:
            rest = text
        parts.append(rest)
        sources[name] = "\n".join(parts)
    return sources


def _files() -> dict[str, str]:
    return {
        entry.name[:-4]: entry.read_text(encoding="utf-8")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".lua")
    }


#: Scripts whose keys span hash slots, run on a single Redis only: a cluster has none of them.
#: ``click`` is a whole buy click in one call, where a cluster runs its two steps apart
#: (``admit`` in the show's slot, ``reserve`` in the SKU's).
SINGLE_REDIS = frozenset({"click"})


def shard(sources: Mapping[str, str]) -> dict[str, str]:
    """The same scripts for a Redis Cluster: their events go out by sharded pub/sub
    (``SPUBLISH``, to the subscribers of the channel's slot only) instead of to every node.
    Every channel a script publishes on is one of its ``KEYS``, in the script's slot. The
    scripts of :data:`SINGLE_REDIS` are left out."""
    return {
        name: src.replace(_PUBLISH, _SPUBLISH)
        for name, src in sources.items()
        if name not in SINGLE_REDIS
    }


_PUBLISH = "redis.call('PUBLISH', "
_SPUBLISH = "redis.call('SPUBLISH', "

#: Script name -> its full source (preludes included), as Redis runs it.
SOURCES: dict[str, str] = compose(_files())
#: The same for a Redis Cluster.
SHARDED: dict[str, str] = shard(SOURCES)


def _shas(sources: Mapping[str, str]) -> dict[str, str]:
    return {name: hashlib.sha1(src.encode()).hexdigest() for name, src in sources.items()}


#: Script name -> the SHA-1 Redis knows it by.
SHAS: dict[str, str] = _shas(SOURCES)
SHARDED_SHAS: dict[str, str] = _shas(SHARDED)


def is_cluster(redis: Any) -> bool:
    """True for a Redis Cluster client (its scripts are :data:`SHARDED`)."""
    return isinstance(redis, RedisCluster)


def sources_for(redis: Any) -> tuple[dict[str, str], dict[str, str]]:
    """``(sources, shas)`` of the scripts as ``redis`` runs them."""
    return (SHARDED, SHARDED_SHAS) if is_cluster(redis) else (SOURCES, SHAS)


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of a registered script with its keys and arguments, in the script's order.

    Made only by the builders of :mod:`livesale.lua.calls`.
    """

    name: str
    keys: list[str]
    args: list[Any]


class Scripts:
    """The registry bound to one Redis client: loads every script and runs calls of them."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.sources, self.shas = sources_for(redis)
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source) for name, source in self.sources.items()
        }

    async def load(self) -> None:
        """Load every script now, so the first buy click does not pay for it."""
        with map_redis_errors("cannot load Lua scripts"):
            for source in self.sources.values():
                await self.redis.script_load(source)

    def sha(self, name: str) -> str:
        """The SHA of script ``name`` (for pipelined ``EVALSHA``)."""
        return self.shas[name]

    def has(self, name: str) -> bool:
        """Whether this Redis runs script ``name`` (a cluster has no :data:`SINGLE_REDIS`
        script)."""
        return name in self.sources

    async def run(self, call: ScriptCall) -> Any:
        """Run ``call``; Redis errors come out as :class:`StoreError`."""
        with map_redis_errors(f"redis script {call.name} failed"):
            return await self._scripts[call.name](keys=call.keys, args=call.args)
