"""The running server's shared parts, built once at start-up and used by every endpoint.

:class:`Services` holds what every domain needs (settings, the database, Redis, the Lua scripts, the
token signer, API keys, metrics). Each domain's own part is put in with a typed
:class:`Part` key that the domain declares (``livesale.catalogue.CATALOGUE`` and so on), like
aiohttp's ``AppKey``: this module knows no domain, and ``services.get(CATALOGUE)`` is typed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from starlette.requests import HTTPConnection

from livesale.auth import ApiKeys
from livesale.config import Settings
from livesale.db import Database, open_database
from livesale.errors import ConfigError, Unavailable
from livesale.ids import TokenSigner
from livesale.lua import Scripts
from livesale.metrics import Metrics

T = TypeVar("T")


class Component(Protocol):
    """A part with background work (sweepers, the room bus, the media relay)."""

    async def aclose(self) -> None: ...


class Part(Generic[T]):
    """The typed key of one domain's part in :class:`Services`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Part({self.name!r})"


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    scripts: Scripts
    signer: TokenSigner
    keys: ApiKeys
    metrics: Metrics
    #: Each domain's part, put in by ``livesale.app`` at start-up.
    _parts: dict[Part[Any], Any] = field(default_factory=dict)

    def provide(self, key: Part[T], part: T) -> None:
        """Make ``part`` the one ``get(key)`` answers."""
        self._parts[key] = part

    def get(self, key: Part[T]) -> T:
        """The part put in under ``key``; :class:`Unavailable` (503) while it is not running."""
        try:
            part: T = self._parts[key]
        except KeyError:
            raise Unavailable(f"the {key.name} part is not running") from None
        return part

    def find(self, key: Part[T]) -> T | None:
        """The part under ``key``, or ``None`` when there is none."""
        found: T | None = self._parts.get(key)
        return found

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.close()


def of(conn: HTTPConnection) -> Services:
    """The services of the app serving ``conn`` (a request or a WebSocket)."""
    services: Services = conn.app.state.services
    return services


#: URL schemes of a Redis Cluster (any one node; the client finds the others): the same URL
#: as for one Redis, ``+cluster`` after the scheme.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str) -> str | None:
    """The plain URL of one node if ``url`` names a Redis Cluster, else ``None``."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def redact(url: str) -> str:
    """``url`` with its password, if any, as ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


async def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url`` that has answered PING; :class:`ConfigError` in one line if not.

    ``redis+cluster://host:port`` (or ``rediss+cluster://``) is a Redis Cluster: the client
    reads the cluster's map of slots from that node and sends each command to the node that
    owns its keys. (It is typed as the one-node client: the two share the commands livesale
    uses; the few places that differ ask :func:`livesale.lua.is_cluster`.)"""
    node = cluster_url(url)
    client: aioredis.Redis
    if node is not None:
        client = RedisCluster.from_url(  # type: ignore[assignment]
            node, max_connections=256, health_check_interval=15, socket_connect_timeout=5
        )
    else:
        # A blocking pool: under a burst, callers wait for a free connection instead of
        # failing with "Too many connections" (redis-py's plain pool refuses past its limit).
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=256, timeout=10, health_check_interval=15, socket_connect_timeout=5
        )
        client = aioredis.Redis.from_pool(pool)  # owns the pool: aclose closes it
    try:
        await client.ping()
    except (RedisError, RedisClusterException, OSError) as exc:
        await client.aclose()
        raise ConfigError(f"cannot reach Redis at {redact(url)}: {exc}") from exc
    return client


async def _signing_secret(db: Database) -> bytes:
    """The secret that signs viewer tokens, shared by every process on this data directory."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES ('signing_secret', ?) ON CONFLICT DO NOTHING",
            (secrets.token_hex(32),),
        )
        cur = await conn.execute("SELECT value FROM settings WHERE key = 'signing_secret'")
        row = await cur.fetchone()
    assert row is not None
    return bytes.fromhex(row[0])


async def build(settings: Settings, metrics: Metrics | None = None) -> Services:
    """Connect to Redis and the store of record (applying migrations) and build the shared
    parts; the domains' parts are added by ``livesale.app.assemble``."""
    if settings.redis_url is None:
        raise ConfigError("no Redis URL: start the embedded Redis first (livesale serve does)")
    redis = await connect_redis(settings.redis_url)
    try:
        db = await open_database(settings.database)
    except BaseException:
        await redis.aclose()
        raise
    try:
        scripts = Scripts(redis)
        await scripts.load()
        return Services(
            settings=settings,
            db=db,
            redis=redis,
            scripts=scripts,
            signer=TokenSigner(await _signing_secret(db)),
            keys=ApiKeys(db),
            metrics=metrics or Metrics(),
        )
    except BaseException:
        await redis.aclose()
        await db.close()
        raise
