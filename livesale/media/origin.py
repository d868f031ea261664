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

**Several nodes** (each with ``--node-url``, its own origin as the other nodes reach it) share
Redis behind a balancer. The origin record then names the node too (``wN NODE-URL``). A node
asked for a show whose publisher another node holds does not forward the viewer there: it pulls
the show once, as a WHEP player of the origin node (the same ``POST /whep/{id}`` any player
uses), and relays it to every viewer of its own (:meth:`MediaHub.pull
<livesale.media.hub.MediaHub.pull>`). One worker per node pulls each show, recorded as
``ls:{show:ID}:relay:NODE-URL`` = ``wN``; the node's other workers forward their viewers' offers
to it. A pull ends 30 s after its node's last viewer of the show has gone. When the pull's feed
ends (the origin node died, or the host published again to another node) while viewers are
still here, the node pulls again from the show's new origin once the record names one.

A WHIP answered by a node makes it the show's origin, whichever node held the show before: a
host whose node died publishes again through the balancer, and lands on any node. An origin
that finds the record naming another node or worker ends its own publisher (its host has
moved) and, while it still has viewers of the show, pulls the show like any other node.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from livesale import background, errors, keys
from livesale.config import Settings
from livesale.lua import is_cluster
from livesale.media.errors import NoPublisher
from livesale.origins import origin_of
from livesale.shards import ShardedSubscriber
from livesale.workers import WORKER_HEADER

if TYPE_CHECKING:
    from livesale.media.hub import MediaHub

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
#: A session id's node and worker: ``n<tag>.`` (with ``--node-url``), then ``w<index>.``
#: (with workers).
_SESSION = re.compile(r"(?:(n[0-9a-f]{10})\.)?(?:w(\d{1,4})\.)?")
#: Set on a ``DELETE`` one node passes to another: never passed on again.
HOP_HEADER = "x-livesale-node-hop"
#: How long a node's entry in Redis (its tag's URL) outlives its last refresh.
NODE_TTL_MS = 60_000
#: An origin record: ``w<index>``, then `` <node URL>`` with ``--node-url``.
_RECORD = re.compile(r"w(\d{1,4})(?: (\S{1,512}))?")
#: How often a node looks for viewers whose pulled feed has ended, to pull the show again.
REPULL_SECONDS = 2.0
#: A publisher younger than this is not ended for a record naming another holder: its own
#: claim may not be written yet.
MOVED_AFTER = 2.0
#: Seconds a pull's WHEP offer may take at the origin node (it gathers ICE candidates).
PULL_TIMEOUT = 30.0


def _text(raw: object) -> str:
    """A record read from Redis, as text (``""`` for none)."""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else ""


@dataclass(frozen=True)
class Holder:
    """Who holds a show's publisher: a worker, and its node (``""``: this node)."""

    worker: int
    node: str = ""


def session_worker(session_id: str) -> int | None:
    """The index of the worker holding ``session_id``, when its id says so."""
    found = _SESSION.match(session_id)
    return int(found.group(2)) if found and found.group(2) else None


def session_node(session_id: str) -> str | None:
    """The tag of the node holding ``session_id``, when its id says so."""
    found = _SESSION.match(session_id)
    return found.group(1) if found and found.group(1) else None


def node_tag(node_url: str) -> str:
    """The short tag that starts the session ids of the node at ``node_url``."""
    return "n" + hashlib.sha256(origin_of(node_url).encode()).hexdigest()[:10]


def session_prefix(settings: Settings) -> str:
    """What starts every session id of this process: its node's tag, then its worker."""
    prefix = f"{node_tag(settings.node_url)}." if settings.node_url else ""
    return prefix + (f"w{settings.worker}." if settings.workers > 1 else "")


class Origins:
    """This worker's view of the shows' origins, and its forwarding to the other workers."""

    def __init__(self, redis: aioredis.Redis, settings: Settings, hub: MediaHub) -> None:
        self.redis = redis
        self.settings = settings
        self.me = settings.worker
        #: This node's origin (``--node-url``); empty for a node alone.
        self.node = origin_of(settings.node_url) if settings.node_url else ""
        self.tag = node_tag(settings.node_url) if settings.node_url else ""
        self.hub = hub
        self._clients: dict[int, httpx.AsyncClient] = {}
        #: For pulls: the other nodes' WHEP endpoints, over the network.
        self._nodes: httpx.AsyncClient | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._repuller: asyncio.Task[None] | None = None

    # -- the record ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self._announce()
        self._refresher = loop.create_task(self._refresh())
        if self.node:
            self._repuller = loop.create_task(self._repull())

    async def _announce(self) -> None:
        """Say where this node is, for the session URLs other nodes are asked to end."""
        if not self.node:
            return
        try:
            await self.redis.set(keys.node(self.tag), self.node, px=NODE_TTL_MS)
        except RedisError as exc:
            log.warning("could not record this node's URL: %s", exc)

    @property
    def _record(self) -> str:
        return f"w{self.me} {self.node}" if self.node else f"w{self.me}"

    async def claim(self, show_id: str) -> None:
        """This worker now holds ``show_id``'s publisher."""
        try:
            await self.redis.set(keys.show_origin(show_id), self._record, px=ORIGIN_TTL_MS)
        except RedisError as exc:
            log.warning("could not record show %s's origin: %s", show_id, exc)

    async def owner(self, show_id: str) -> int | None:
        """The worker of this node that holds ``show_id``'s publisher, if another one does."""
        holder = await self.holder(show_id)
        return holder.worker if holder is not None and not holder.node else None

    async def holder(self, show_id: str) -> Holder | None:
        """Who holds ``show_id``'s publisher, when another worker or node does."""
        try:
            raw = await self.redis.get(keys.show_origin(show_id))
        except RedisError as exc:
            log.warning("could not read show %s's origin: %s", show_id, exc)
            return None
        found = _RECORD.fullmatch(_text(raw))
        if found is None:
            return None
        index, node = int(found.group(1)), found.group(2) or ""
        if node and node != self.node:
            return Holder(index, node)
        if index == self.me or index >= self.settings.workers:
            return None
        return Holder(index)

    # -- pulls from the origin node ------------------------------------------------------

    async def relay_worker(self, show_id: str) -> int:
        """The worker of this node that pulls ``show_id`` from its origin node: this one,
        unless another worker of the node already does (or has just started to)."""
        key = keys.show_relay(show_id, self.node)
        mine = f"w{self.me}"
        try:
            if await self.redis.set(key, mine, px=ORIGIN_TTL_MS, nx=True):
                return self.me
            raw = await self.redis.get(key)
        except RedisError as exc:
            log.warning("could not read show %s's relay: %s; pulling here", show_id, exc)
            return self.me
        found = _RECORD.fullmatch(_text(raw))
        if found is not None and int(found.group(1)) < self.settings.workers:
            return int(found.group(1))
        await self.take_relay(show_id)
        return self.me

    async def take_relay(self, show_id: str) -> None:
        """This worker pulls ``show_id`` for this node from now on."""
        try:
            await self.redis.set(
                keys.show_relay(show_id, self.node), f"w{self.me}", px=ORIGIN_TTL_MS
            )
        except RedisError as exc:
            log.warning("could not record show %s's relay: %s", show_id, exc)

    async def pull(self, show_id: str, holder: Holder) -> None:
        """Relay ``show_id`` in this worker, pulled from ``holder``'s node (see the module)."""
        node = holder.node

        async def signal(offer: str) -> tuple[str, str]:
            return await self._pull_offer(node, show_id, offer)

        await self.hub.pull(show_id, signal, self._hang_up)

    async def _pull_offer(self, node: str, show_id: str, offer: str) -> tuple[str, str]:
        """``offer`` sent to ``node``'s WHEP endpoint of ``show_id``: its answer and the
        session's URL. The node's refusal is passed on: ``409`` (no media yet) as
        :class:`NoPublisher`, anything else, or no answer, as ``503``."""
        endpoint = f"{node}/whep/{show_id}"
        try:
            answer = await self._node_client().post(
                endpoint, content=offer.encode(), headers={"content-type": "application/sdp"}
            )
        except httpx.HTTPError as exc:
            raise errors.Unavailable(
                f"the node holding show {show_id} cannot be reached ({type(exc).__name__})",
                retry_after=2,
            ) from exc
        if answer.status_code == 409:
            raise NoPublisher(f"show {show_id} has no media at its origin node yet")
        location = urljoin(endpoint, answer.headers.get("location", ""))
        if answer.status_code != 201 or not location.startswith(f"{endpoint}/"):
            raise errors.Unavailable(
                f"the node holding show {show_id} answered {answer.status_code}", retry_after=2
            )
        return answer.text, location

    async def _hang_up(self, location: str) -> None:
        try:
            await self._node_client().delete(location)
        except httpx.HTTPError as exc:
            log.info("could not end the pull %s (%s): it lapses there", location, exc)

    def _node_client(self) -> httpx.AsyncClient:
        if self._nodes is None:
            self._nodes = httpx.AsyncClient(timeout=PULL_TIMEOUT, follow_redirects=False)
        return self._nodes

    async def _repull(self) -> None:
        """Pull again the shows whose viewers here lost their pulled feed (see the module)."""
        while True:
            await asyncio.sleep(REPULL_SECONDS)
            for show_id in self.hub.orphaned():
                holder = await self.holder(show_id)
                if holder is None or not holder.node:
                    continue  # the show is back on this node, or has no origin yet
                await self.take_relay(show_id)
                try:
                    await self.pull(show_id, holder)
                except errors.LivesaleError as exc:
                    log.info("show %s: pulling again failed: %s", show_id, exc.detail)
            background.check_cancelled()

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
                wanted = {keys.show_channel(show_id) for show_id in self.hub.published()}
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
                await shards.follow({keys.show_channel(s) for s in self.hub.published()})
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
            await self._announce()
            for show_id in self.hub.published():
                # A publisher this worker has just taken may not have claimed the show yet.
                if self.hub.publisher_age(show_id) > MOVED_AFTER and await self._moved(show_id):
                    log.info("show %s: its host publishes elsewhere now", show_id)
                    await self.hub.unpublish(show_id)
                else:
                    await self.claim(show_id)
            for show_id in self.hub.relayed():
                await self.take_relay(show_id)
            background.check_cancelled()

    async def _moved(self, show_id: str) -> bool:
        """True when the origin record names another node, or worker, than this one: a WHIP
        answered there since."""
        try:
            raw = await self.redis.get(keys.show_origin(show_id))
        except RedisError:
            return False
        return raw is not None and _text(raw) != self._record

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

    async def forward_to_node(
        self, request: Request, tag: str, show_id: str, session_id: str
    ) -> Response | None:
        """``request`` (a ``DELETE`` on a session URL) as the node tagged ``tag`` answers it;
        ``None`` when that node is unknown or cannot be reached, or when ``request`` was passed
        on by a node already."""
        if request.headers.get(HOP_HEADER):
            return None
        try:
            raw = await self.redis.get(keys.node(tag))
        except RedisError as exc:
            log.warning("could not read node %s's URL: %s", tag, exc)
            return None
        if not isinstance(raw, bytes):
            return None
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "origin")}
        headers[HOP_HEADER] = "1"
        try:
            kind = "whip" if request.url.path.startswith("/whip/") else "whep"
            target = f"{raw.decode()}/{kind}/{quote(show_id, safe='')}/{quote(session_id, safe='')}"
            answer = await self._node_client().request(request.method, target, headers=headers)
        except httpx.HTTPError as exc:
            log.info("node %s cannot be reached (%s)", tag, exc)
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
        await self.hub.close_pulls()
        tasks = (self._refresher, self._follower, self._repuller)
        await background.stop([t for t in tasks if t is not None])
        await asyncio.gather(*(c.aclose() for c in self._clients.values()))
        self._clients.clear()
        if self._nodes is not None:
            await self._nodes.aclose()
