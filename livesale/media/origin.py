"""Which worker holds a show's publisher, and the WHIP and WHEP requests forwarded to it.

With ``serve --workers N`` every worker runs its own relay, and the kernel hands each new
connection to any of them (SO_REUSEPORT). The worker that takes a show's WHIP is the show's
*origin*: it records itself in Redis (``ls:{show:ID}:origin`` = ``wN``), again every few
seconds while its publisher is there; the record lapses :data:`ORIGIN_TTL_MS` after the
publisher has gone. Any other worker that gets a WHIP or WHEP request for the show forwards it,
as it came, over the origin's own unix socket (``DATA_DIR/run/worker-N.sock``) and returns the
origin's answer. The answer's ICE candidates are the origin's, so the media then flows between
the client and the origin directly. A session id starts with its worker (``w2.…``), so a
``DELETE`` on a session's URL reaches the worker that holds it the same way.

A forwarded request carries the run's worker secret, which makes the origin handle it itself
(never forwarding again) and take the client's address from it: a client cannot send it.
When the origin cannot be reached (it died; the supervisor restarts it), the worker that got
the request handles it and becomes the show's origin.

The host may feature an item through any worker, but the recording is the origin's: the origin
follows the room events of the shows it holds and marks each ``featured`` on its recording's
timeline as it hears it (:meth:`Origins.follow_features`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from livesale import background, keys
from livesale.config import Settings
from livesale.lua import is_cluster
from livesale.shards import ShardedSubscriber
from livesale.workers import WORKER_HEADER

log = logging.getLogger("livesale.media")

#: How long a worker stays a show's origin after its last word (its publisher gone, or it died).
ORIGIN_TTL_MS = 15_000
#: How often an origin says again that it holds its shows' publishers.
REFRESH_SECONDS = 5.0
#: The client's address key, as the forwarding worker found it.
CLIENT_HEADER = "x-livesale-client"
#: The request headers a forwarded WHIP/WHEP request keeps.
_FORWARDED_REQUEST = ("host", "content-type", "authorization", "if-match", "origin")
#: The answer headers the client gets back.
_FORWARDED_ANSWER = ("location", "etag", "link", "content-type", "retry-after", "allow")
#: A session id's worker: ``w<index>.``.
_SESSION_WORKER = re.compile(r"w(\d{1,4})\.")


def session_worker(session_id: str) -> int | None:
    """The index of the worker holding ``session_id``, when its id says so."""
    found = _SESSION_WORKER.match(session_id)
    return int(found.group(1)) if found else None


class Origins:
    """This worker's view of the shows' origins, and its forwarding to the other workers."""

    def __init__(
        self, redis: aioredis.Redis, settings: Settings, published: Callable[[], set[str]]
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.me = settings.worker
        self._published = published
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None

    # -- the record ----------------------------------------------------------------------

    async def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def claim(self, show_id: str) -> None:
        """This worker now holds ``show_id``'s publisher."""
        try:
            await self.redis.set(keys.show_origin(show_id), f"w{self.me}", px=ORIGIN_TTL_MS)
        except RedisError as exc:
            log.warning("could not record show %s's origin: %s", show_id, exc)

    async def owner(self, show_id: str) -> int | None:
        """The worker that holds ``show_id``'s publisher, if another one does."""
        try:
            raw = await self.redis.get(keys.show_origin(show_id))
        except RedisError as exc:
            log.warning("could not read show %s's origin: %s", show_id, exc)
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        if not text or not text.startswith("w") or not text[1:].isdigit():
            return None
        index = int(text[1:])
        return None if index == self.me or index >= self.settings.workers else index

    def follow_features(self, mark: Callable[[str, str | None], None]) -> None:
        """Call ``mark(show_id, sku)`` for every item featured in a show this worker holds,
        whichever worker handled the host's Feature."""
        self._follower = asyncio.get_running_loop().create_task(self._follow(mark))

    async def _follow(self, mark: Callable[[str, str | None], None]) -> None:
        if is_cluster(self.redis):
            await self._follow_shards(mark)
            return
        pubsub: Any = self.redis.pubsub()
        following: set[str] = set()
        try:
            while True:
                wanted = {keys.show_channel(show_id) for show_id in self._published()}
                try:
                    if wanted - following:
                        await pubsub.subscribe(*(wanted - following))
                    if following - wanted:
                        await pubsub.unsubscribe(*(following - wanted))
                    following = wanted
                    if not following:
                        await asyncio.sleep(0.5)
                        continue
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                except RedisError as exc:
                    log.warning("following the shows' features failed: %s; again in 1 s", exc)
                    following = set()
                    await pubsub.aclose()
                    pubsub = self.redis.pubsub()
                    await asyncio.sleep(1)
                    continue
                if message is not None and message.get("type") == "message":
                    self._featured(message["channel"], message["data"], mark)
                background.check_cancelled()
        finally:
            await pubsub.aclose()

    async def _follow_shards(self, mark: Callable[[str, str | None], None]) -> None:
        """The same on a Redis Cluster, whose room events go by sharded pub/sub."""
        shards = ShardedSubscriber(
            self.redis,  # type: ignore[arg-type]
            lambda channel, data: self._featured(channel, data, mark),
        )
        try:
            while True:
                await shards.follow({keys.show_channel(s) for s in self._published()})
                await asyncio.sleep(0.5)
        finally:
            await shards.aclose()

    @staticmethod
    def _featured(channel: bytes, data: bytes, mark: Callable[[str, str | None], None]) -> None:
        if b'"featured"' not in data:  # the room's other events: chat, stock, ...
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        if isinstance(event, dict) and event.get("type") == "featured":
            show_id = channel.decode().removeprefix(f"{keys.PREFIX}{{show:").split("}", 1)[0]
            sku = event.get("sku")
            mark(show_id, sku if isinstance(sku, str) else None)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            for show_id in self._published():
                await self.claim(show_id)
            background.check_cancelled()

    # -- forwarding ----------------------------------------------------------------------

    def forwarded(self, request: Request) -> bool:
        """True when another worker of this run forwarded ``request``."""
        secret = request.headers.get(WORKER_HEADER, "")
        return bool(secret) and hmac.compare_digest(secret, self.settings.worker_secret)

    def forwarded_client(self, request: Request) -> str | None:
        """The client address a forwarding worker found, on a forwarded request."""
        return request.headers.get(CLIENT_HEADER) if self.forwarded(request) else None

    async def forward(
        self, request: Request, worker: int, body: bytes, client: str
    ) -> Response | None:
        """``request`` as the worker ``worker`` answers it; ``None`` when it cannot be reached
        (the caller then answers it itself)."""
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED_REQUEST}
        headers[WORKER_HEADER] = self.settings.worker_secret
        headers[CLIENT_HEADER] = client
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            answer = await self._client(worker).request(
                request.method, target, content=body, headers=headers
            )
        except httpx.TransportError as exc:
            log.warning("worker %d cannot be reached (%s): answering here", worker, exc)
            return None
        kept = {k: v for k, v in answer.headers.items() if k in _FORWARDED_ANSWER}
        return Response(answer.content, answer.status_code, kept)

    def _client(self, worker: int) -> httpx.AsyncClient:
        client = self._clients.get(worker)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=str(self.settings.worker_socket(worker)))
            # The offer's answer waits for ICE gathering on the origin: a few seconds at most.
            client = httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=30)
            self._clients[worker] = client
        return client

    async def aclose(self) -> None:
        await background.stop([t for t in (self._refresher, self._follower) if t is not None])
        await asyncio.gather(*(c.aclose() for c in self._clients.values()))
        self._clients.clear()
