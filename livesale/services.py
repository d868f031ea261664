"""The running server's parts, built once at start-up and shared by every endpoint."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from livesale.auth import ApiKeys
from livesale.config import Settings
from livesale.db import Database
from livesale.errors import ConfigError
from livesale.ids import TokenSigner
from livesale.metrics import Metrics
from livesale.orders.store import Catalogue, StockStore
from livesale.room.store import ShowStore
from livesale.scripts import Scripts


class Component(Protocol):
    """A part with background work (sweepers, the room bus, the media relay)."""

    async def aclose(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    scripts: Scripts
    signer: TokenSigner
    keys: ApiKeys
    catalogue: Catalogue
    stock: StockStore
    shows: ShowStore
    metrics: Metrics
    #: Set by the components that own them at start-up (see ``livesale.app``).
    components: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.close()


def of(conn: HTTPConnection) -> Services:
    """The services of the app serving ``conn`` (a request or a WebSocket)."""
    services: Services = conn.app.state.services
    return services


async def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url`` that has answered PING; :class:`ConfigError` in one line if not."""
    # A blocking pool: under a burst, callers wait for a free connection instead of failing
    # with "Too many connections" (redis-py's plain pool refuses past its limit at once).
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=256, timeout=10, health_check_interval=15, socket_connect_timeout=5
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose closes it
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise ConfigError(f"cannot reach Redis at {url}: {exc}") from exc
    return client


async def _signing_secret(db: Database) -> bytes:
    """The secret that signs viewer tokens, shared by every process on this data directory."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES ('signing_secret', ?)",
            (secrets.token_hex(32),),
        )
        cur = await conn.execute("SELECT value FROM settings WHERE key = 'signing_secret'")
        row = await cur.fetchone()
    assert row is not None
    return bytes.fromhex(row[0])


async def build(settings: Settings, metrics: Metrics | None = None) -> Services:
    """Connect to Redis and SQLite (applying migrations) and build every part."""
    if settings.redis_url is None:
        raise ConfigError("no Redis URL: start the embedded Redis first (livesale serve does)")
    redis = await connect_redis(settings.redis_url)
    try:
        db = await Database.open(settings.db_path)
    except BaseException:
        await redis.aclose()
        raise
    scripts = Scripts(redis)
    await scripts.load()
    catalogue = Catalogue(db)
    stock = StockStore(db, redis, scripts)
    return Services(
        settings=settings,
        db=db,
        redis=redis,
        scripts=scripts,
        signer=TokenSigner(await _signing_secret(db)),
        keys=ApiKeys(db),
        catalogue=catalogue,
        stock=stock,
        shows=ShowStore(db, redis, catalogue, stock, settings.base_url),
        metrics=metrics or Metrics(),
    )
