"""Lua scripts, loaded once per process and called by SHA (``EVALSHA``).

redis-py's :class:`~redis.commands.core.AsyncScript` falls back to ``SCRIPT LOAD`` when Redis
answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``), so callers never see that case.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from livesale.errors import StoreError


class Scripts:
    """Every ``livesale/orders/lua/*.lua`` script, by file stem."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {}
        for entry in resources.files("livesale.orders").joinpath("lua").iterdir():
            if entry.name.endswith(".lua"):
                source = entry.read_text(encoding="utf-8")
                self._scripts[entry.name[:-4]] = redis.register_script(source)

    async def load(self) -> None:
        """Load every script now, so the first buy click does not pay for it."""
        for script in self._scripts.values():
            try:
                await script.registered_client.script_load(script.script)
            except RedisError as exc:
                raise StoreError(f"cannot load Lua scripts: {exc}") from exc

    def get(self, name: str) -> AsyncScript:
        """The registered script ``name`` (its ``sha`` and source), for pipelined calls."""
        return self._scripts[name]

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script ``name``; Redis errors come out as :class:`StoreError`."""
        try:
            return await self._scripts[name](keys=keys, args=args)
        except RedisError as exc:
            raise StoreError(f"redis script {name} failed: {exc}") from exc
