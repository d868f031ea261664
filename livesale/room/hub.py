"""The room hub: one Redis subscription per process, multiplexed to the rooms of this process.

Every event arrives once per process from Redis, is encoded (or relayed) once — JSON and
WebSocket frame both — and handed to each connection with ``push``, a plain, non-blocking call:
written straight to the socket while it keeps up, else put on the connection's bounded queue.
A connection whose queue is full is closed with 1013 (it reconnects and gets a snapshot);
nobody else waits for it, like ``websockets.broadcast``. Hearts, stock and sales are coalesced
per show on a 100 ms tick; presence is summed over every process once a second through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError
from starlette.types import Send

from livesale import background, keys
from livesale.errors import LivesaleError
from livesale.events import SEQUENCED, encoder
from livesale.ids import new_id
from livesale.lua import is_cluster
from livesale.orders import ORDERS
from livesale.room.messages import (
    BackInStock,
    Hearts,
    Presence,
    SaleItem,
    Snapshot,
    Sold,
    StockChanged,
    StockItem,
    You,
)
from livesale.room.state import Refused
from livesale.room.store import RoomBus
from livesale.services import Part, Services
from livesale.shards import ShardedSubscriber
from livesale.shows import SHOWS
from livesale.transport import FrameSink, text_frame

log = logging.getLogger("livesale.room")

#: Frames waiting for one connection before it is dropped (1013) as too slow.
QUEUE_FRAMES = 512
#: The coalescing tick: hearts every tick, stock and sales every ``STOCK_TICKS`` ticks.
TICK_SECONDS = 0.1
STOCK_TICKS = 2
PRESENCE_SECONDS = 1.0
#: A process that stops reporting is forgotten by the presence count after this long.
PRESENCE_TTL_MS = 5000
#: The id of a socket without a token (a watcher) starts with this; a new one per socket.
WATCHER_PREFIX = "watch"

_PREFIX = keys.show_channel("\0").split("\0")[0].encode()
_SUFFIX = keys.show_channel("\0").split("\0")[1].encode()


class _Envelope(msgspec.Struct):
    """What the hub needs to route a bus event; the rest of it is relayed untouched."""

    type: str
    seq: int = 0
    viewer_id: str | None = None
    sku: str | None = None
    available: int | None = None
    qty: int | None = None
    count: int | None = None
    #: The show an event on a SKU's channel is for.
    show: str | None = None
    #: A ``kick`` (never relayed): whose sockets close, with which code and reason.
    client: str = ""
    host: bool = False
    code: int = 0
    reason: str = ""


_envelope = msgspec.json.Decoder(_Envelope)


class Out:
    """One encoded frame, for any number of connections: the JSON ``payload``, and the
    WebSocket frame around it, built on first use and then shared by every connection."""

    __slots__ = ("payload", "_wire")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.payload)
        return self._wire

    @property
    def text(self) -> str:
        return self.payload.decode()


class Conn:
    """One WebSocket's place in a room: identity and the bounded queue of encoded frames.

    The hub only calls :meth:`push`. With a :class:`~livesale.transport.FrameSink` a frame goes
    straight to the socket while it is writable, and nothing else exists for the connection
    beyond this object. Only once a frame has to wait (the socket is not writable, or there is
    no sink) does the connection get its queue and a writer task, which drains the queue with
    ``send`` (or the sink), sends the close frame once ``close_code`` is set, and then ends: a
    connection that keeps up costs no task and no queue.
    """

    __slots__ = (
        "show_id",
        "viewer_id",
        "nick",
        "host",
        "sink",
        "send",
        "queue",
        "writer",
        "pending",
        "floor",
        "close_code",
        "close_reason",
        "limit",
        "on_drop",
        "client",
        "notify",
        "watcher",
    )

    def __init__(
        self,
        show_id: str,
        viewer_id: str,
        nick: str,
        host: bool,
        limit: int = QUEUE_FRAMES,
        watcher: bool = False,
    ) -> None:
        self.show_id = show_id
        self.viewer_id = viewer_id
        self.nick = nick
        self.host = host
        #: A socket without a token: it watches, and signs in to do more.
        self.watcher = watcher
        #: The client address the socket came from (:func:`livesale.clients.client_of`).
        self.client = ""
        #: Direct writes to the socket, when the server offers them.
        self.sink: FrameSink | None = None
        #: The socket's ASGI ``send``; frames queue, unsent, until the socket has one.
        self.send: Send | None = None
        #: Frames waiting for the writer, in order; ``None`` until one has to wait.
        self.queue: deque[Out] | None = None
        #: The task draining :attr:`queue`, while there is something to drain or close.
        self.writer: asyncio.Task[None] | None = None
        #: While a snapshot is being read, frames wait here with their sequence numbers.
        self.pending: list[tuple[Out, int]] | None = None
        #: Sequenced frames up to this number are already in the last snapshot sent.
        self.floor = 0
        self.close_code = 0
        self.close_reason = ""
        self.limit = limit
        #: Called once if the connection is dropped for being too slow.
        self.on_drop: Callable[[], object] | None = None
        #: The sold-out SKUs this viewer waits for (``None`` until it asks for one).
        self.notify: set[str] | None = None

    def push(self, frame: Out, seq: int = 0) -> None:
        """Send or queue ``frame`` without waiting; ``seq`` is set for sequenced events only."""
        if self.close_code:
            return
        if self.pending is not None:
            if len(self.pending) >= self.limit:
                self.close(1013, "too slow; reconnect", drop=True)
            else:
                self.pending.append((frame, seq))
            return
        if seq and seq <= self.floor:
            return
        queue = self.queue
        if not queue:
            sink = self.sink
            if sink is not None and sink.ready():
                sink.write(frame.wire)
                return
            if queue is None:
                queue = self.queue = deque()
        elif len(queue) >= self.limit:
            self.close(1013, "too slow; reconnect", drop=True)
            return
        queue.append(frame)
        self._start_writer()

    def close(self, code: int, reason: str = "", drop: bool = False) -> None:
        """Ask the writer to close with ``code`` after the queued frames (or at once: ``drop``)."""
        if self.close_code:
            return
        self.close_code = code
        self.close_reason = reason
        if drop:
            if self.queue:
                self.queue.clear()
            if self.on_drop is not None:
                self.on_drop()
        self._start_writer()

    def gone(self) -> None:
        """The socket is closing or closed: drop what is queued and queue nothing more."""
        self.close_code = self.close_code or 1006
        if self.queue:
            self.queue.clear()

    def _start_writer(self) -> None:
        if self.writer is None and self.send is not None:
            self.writer = asyncio.get_running_loop().create_task(self._write(), name="room-writer")

    async def _write(self) -> None:
        """Drain the queue into the socket, then send the close frame the hub asked for, if it
        did; the queue and the task go with the last frame."""
        send, sink = self.send, self.sink
        assert send is not None
        try:
            queue = self.queue
            while queue:
                if sink is None:
                    await send({"type": "websocket.send", "text": queue.popleft().text})
                elif sink.ready():
                    # Taken off the queue only as it is written, so ``push`` never overtakes it.
                    sink.write(queue.popleft().wire)
                elif not await sink.drain():
                    self.gone()  # closing or closed: nothing more can be written
                    return
            if self.close_code:
                await send(
                    {
                        "type": "websocket.close",
                        "code": self.close_code,
                        "reason": self.close_reason,
                    }
                )
        except OSError:
            self.gone()  # the peer is gone (uvicorn's ClientDisconnected is an OSError)
        except Exception:
            log.exception("room %s: writing to a socket failed", self.show_id)
            self.gone()
        finally:
            # No ``await`` from the empty queue to here: a ``push`` after it starts a new writer.
            self.writer = None
            if not self.queue:
                self.queue = None

    async def stop_writer(self, grace: float = 0.0) -> None:
        """Let the writer finish for up to ``grace`` seconds (the close frame asked for), then
        cancel it; the socket's handler calls this as it ends."""
        writer = self.writer
        if writer is None:
            return
        if grace:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), grace)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer

    def hold_frames(self) -> None:
        """Buffer frames from now on until :meth:`release_frames` (a snapshot is being read)."""
        if self.pending is None:
            self.pending = []

    def release_frames(self, snapshot: Out, seq: int) -> None:
        """Send ``snapshot`` (as of ``seq``), then the buffered frames it does not already hold."""
        pending, self.pending = self.pending or [], None
        self.floor = seq
        self.push(snapshot)
        for frame, frame_seq in pending:
            self.push(frame, frame_seq)


class Room:
    """One show's connections in this process and what is being coalesced for them."""

    __slots__ = (
        "show_id",
        "conns",
        "viewers",
        "hosts",
        "last_seq",
        "hearts_in",
        "hearts_out",
        "stock",
        "sales",
        "presence",
        "levels",
        "skus",
    )

    def __init__(self, show_id: str) -> None:
        self.show_id = show_id
        self.conns: set[Conn] = set()
        self.viewers: dict[str, set[Conn]] = {}
        self.hosts: set[Conn] = set()
        #: The last sequenced event this process relayed; unsequenced frames carry it.
        self.last_seq = 0
        self.hearts_in = 0
        self.hearts_out = 0
        self.stock: dict[str, int] = {}
        self.sales: dict[str, int] = {}
        self.presence = -1
        #: The last units available this process heard of per SKU (to see one come back).
        self.levels: dict[str, int] = {}
        #: The line-up's SKUs, whose channels the room follows on a cluster.
        self.skus: frozenset[str] = frozenset()

    def broadcast(self, frame: Out, seq: int = 0) -> None:
        for conn in self.conns:
            conn.push(frame, seq)

    def counted(self, crowd: int) -> int:
        """The viewers this process counts in the show's presence: distinct viewers, at most
        ``crowd`` per client address (tokens minted on one address do not fill the room)."""
        per_address: dict[str, int] = {}
        for conns in self.viewers.values():
            address = next(iter(conns)).client
            per_address[address] = per_address.get(address, 0) + 1
        return sum(min(n, crowd) if crowd > 0 else n for n in per_address.values())

    def restocked(self, sku: str, available: int) -> list[Conn]:
        """``sku`` is on sale again: tell the viewers here who asked (once); returns them."""
        told = [c for c in self.conns if c.notify and sku in c.notify]
        if told:
            frame = Out(
                encoder.encode(BackInStock(seq=self.last_seq, sku=sku, available=available))
            )
            for conn in told:
                assert conn.notify is not None
                conn.notify.discard(sku)
                conn.push(frame)
        return told

    def kick(self, env: _Envelope) -> None:
        """Close the sockets a ``kick`` names: the host's, or a viewer's and every socket of
        its address."""
        if env.host:
            targets = set(self.hosts)
        else:
            targets = set(self.viewers.get(env.viewer_id or "", ()))
            if env.client:
                targets.update(c for c in self.conns if not c.host and c.client == env.client)
        for conn in targets:
            conn.close(env.code or 1008, env.reason)

    def stamp(self, raw: bytes) -> Out:
        """An unsequenced bus event with this room's current ``seq``."""
        if b'"seq":0' in raw:
            return Out(raw.replace(b'"seq":0', b'"seq":%d' % self.last_seq, 1))
        return Out(b'{"seq":%d,%s' % (self.last_seq, raw[1:]) if raw != b"{}" else raw)


class Hub:
    """The process's room hub. Start with :func:`start`; ``aclose`` stops it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.redis = services.redis
        self.shows = services.get(SHOWS)
        self.crowd = services.settings.crowd_per_address
        self.bus = RoomBus(services.redis, services.scripts, self.shows, crowd=self.crowd)
        self.process = new_id("proc")
        self.rooms: dict[str, Room] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[None]] = set()
        self._pubsub: Any = None
        self._shards: ShardedSubscriber | None = None
        registry = services.metrics.registry
        self.m_conns = Gauge("livesale_room_connections", "Room WebSockets open", registry=registry)
        self.m_dropped = Counter(
            "livesale_room_slow_closed",
            "Room WebSockets closed as too slow (1013)",
            registry=registry,
        )
        self.m_events = Counter(
            "livesale_room_bus_events", "Room events received from Redis", registry=registry
        )

    async def start(self) -> None:
        """Subscribe to every show's and SKU's channel (on a cluster, to the channels of this
        process's rooms as they come), then start relaying, ticking and presence."""
        self._tasks = [
            asyncio.create_task(self._tick(), name="room-tick"),
            asyncio.create_task(self._presence(), name="room-presence"),
        ]
        if is_cluster(self.redis):
            self._shards = ShardedSubscriber(self.redis, self._dispatch)  # type: ignore[arg-type]
            return
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.psubscribe(keys.channel_pattern())
        self._tasks.append(asyncio.create_task(self._listen(), name="room-listen"))

    def _channels(self) -> set[str]:
        """Every channel this process's rooms follow."""
        wanted: set[str] = set()
        for room in self.rooms.values():
            wanted.add(keys.show_channel(room.show_id))
            wanted.update(keys.sku_channel(sku) for sku in room.skus)
        return wanted

    async def _follow(self) -> None:
        """On a cluster: subscribe to what the rooms follow now (a no-op on one Redis)."""
        if self._shards is not None:
            await self._shards.follow(self._channels())

    async def aclose(self) -> None:
        """Stop relaying; forget this process's presence; close every room connection."""
        await background.stop(self._tasks)
        for room in self.rooms.values():
            for conn in room.conns:
                conn.close(1012, "server restarting")
            with contextlib.suppress(LivesaleError):
                await self.bus.presence(room.show_id, self.process, 0, PRESENCE_TTL_MS)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                await self._pubsub.aclose()
        if self._shards is not None:
            await self._shards.aclose()

    # Connections ------------------------------------------------------------------------------

    def attach(self, conn: Conn) -> Room:
        """Put ``conn`` in its room; frames are held until its first snapshot."""
        room = self.rooms.get(conn.show_id)
        if room is None:
            room = self.rooms[conn.show_id] = Room(conn.show_id)
        conn.hold_frames()
        conn.on_drop = self.m_dropped.inc
        room.conns.add(conn)
        if conn.host:
            room.hosts.add(conn)
        else:
            room.viewers.setdefault(conn.viewer_id, set()).add(conn)
        self.m_conns.inc()
        return room

    def detach(self, conn: Conn) -> None:
        room = self.rooms.get(conn.show_id)
        if room is None or conn not in room.conns:
            return
        room.conns.discard(conn)
        room.hosts.discard(conn)
        mine = room.viewers.get(conn.viewer_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del room.viewers[conn.viewer_id]
        self.m_conns.dec()

    async def snapshot(self, conn: Conn) -> None:
        """Send ``conn`` a snapshot, then only the events it does not already reflect."""
        room = self.rooms[conn.show_id]
        conn.hold_frames()
        if self._shards is not None:
            # Follow the room's channels before reading what the snapshot shows.
            room.skus = frozenset(await self.shows.lineup_skus(conn.show_id))
            await self._follow()
        state = await self.bus.state(conn.show_id, conn.viewer_id, conn.host, conn.client)
        show = await self.shows.get(conn.show_id)
        lineup = await self.shows.lineup(conn.show_id)
        room.skus = frozenset(item.sku for item in lineup.items)
        viewers = await self.bus.presence(
            conn.show_id, self.process, room.counted(self.crowd), PRESENCE_TTL_MS
        )
        snap = Snapshot(
            seq=state.seq,
            you=You(
                role="host" if conn.host else "watcher" if conn.watcher else "viewer",
                viewer_id=conn.viewer_id,
                nick=conn.nick,
            ),
            show=show,
            lineup=lineup,
            featured=state.featured,
            requests=state.requests,
            viewers=viewers,
            chat=state.chat,
            slow_mode=state.slow_mode,
            planted=state.planted,
            notifying=state.notifying,
            plants=state.plants,
            muted_until=state.muted_until,
            holds=await self._own_holds(conn, [item.sku for item in lineup.items]),
        )
        conn.notify = set(state.notifying) or None
        for item in lineup.items:
            # What the shelf held as of this read: a later stock event that finds it back
            # from zero tells the viewers waiting for it.
            room.levels.setdefault(item.sku, item.available)
        conn.release_frames(Out(encoder.encode(snap)), state.seq)

    def _forget_notices(self, told: list[Conn], sku: str) -> None:
        """Those viewers were told: their wish leaves Redis too (in the background)."""
        for viewer_id in {c.viewer_id for c in told}:
            task = asyncio.create_task(self._forget_notice(told[0].show_id, viewer_id, sku))
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    async def _forget_notice(self, show_id: str, viewer_id: str, sku: str) -> None:
        try:
            await self.bus.notify(show_id, viewer_id, sku, False)
        except (LivesaleError, Refused) as exc:
            log.warning("forgetting a back-in-stock notice: %s", exc)

    async def _own_holds(self, conn: Conn, skus: list[str]) -> list[dict[str, object]]:
        """The viewer's live holds in this show, as the hold API shows them (none for hosts)."""
        orders = self.services.find(ORDERS)
        if conn.host or orders is None:
            return []
        holds = await orders.live_holds_of(conn.show_id, skus, conn.viewer_id)
        return [msgspec.to_builtins(h) for h in holds]

    def heart(self, show_id: str, count: int) -> None:
        """Count hearts tapped here; they are published (summed) on the next tick."""
        room = self.rooms.get(show_id)
        if room is not None:
            room.hearts_out += count

    # Relaying ---------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # redis-py reconnects and subscribes again; events published meanwhile are
                # lost here, and clients see the gap in ``seq`` and ask for a snapshot.
                log.warning("room bus: %s; resubscribing", exc)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("room bus relay failed; continuing")
            background.check_cancelled()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        """Route one bus event to the room's connections (called in Redis order): a show's
        channel is its room's, and an event on a SKU's channel names its show."""
        self.m_events.inc()
        on_show = channel.startswith(_PREFIX) and channel.endswith(_SUFFIX)
        room = self.rooms.get(channel[len(_PREFIX) : -len(_SUFFIX)].decode()) if on_show else None
        if room is None and on_show:
            return
        try:
            env = _envelope.decode(data)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed room event: %r", data[:200])
            return
        if room is None:
            room = self.rooms.get(env.show or "")
            if room is None:
                return
        kind = env.type
        if env.seq:
            if room.last_seq and env.seq > room.last_seq + 1:
                log.warning(
                    "show %s: events %d..%d missed", room.show_id, room.last_seq + 1, env.seq - 1
                )
            room.last_seq = max(room.last_seq, env.seq)
            room.broadcast(Out(data), env.seq)
        elif kind == "stock" and env.sku is not None and env.available is not None:
            room.stock[env.sku] = env.available
            before = room.levels.get(env.sku)
            room.levels[env.sku] = env.available
            if before is not None and before <= 0 < env.available:
                self._forget_notices(room.restocked(env.sku, env.available), env.sku)
        elif kind == "sale" and env.sku is not None and env.qty is not None:
            room.sales[env.sku] = room.sales.get(env.sku, 0) + env.qty
        elif kind == "hearts" and env.count:
            room.hearts_in += env.count
        elif kind in ("hold", "order", "parcel", "planted", "muted"):
            targets = room.viewers.get(env.viewer_id or "", ())
            if targets:
                frame = room.stamp(data)
                for conn in targets:
                    conn.push(frame)
        elif kind == "kick":
            room.kick(env)
        elif kind == "plants":
            if room.hosts:
                frame = room.stamp(data)
                for conn in room.hosts:
                    conn.push(frame)
        elif kind in SEQUENCED:
            # Published without a number (straight PUBLISH): relay it as unsequenced.
            room.broadcast(room.stamp(data))
        else:
            log.debug("ignoring room event of type %r", kind)

    async def _tick(self) -> None:
        """Coalesce: hearts every tick, stock and sales every ``STOCK_TICKS`` ticks."""
        ticks = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            ticks += 1
            try:
                await self._flush(ticks % STOCK_TICKS == 0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room tick failed")
            background.check_cancelled()

    async def _flush(self, stock_too: bool) -> None:
        outgoing = [
            (room.show_id, room.hearts_out) for room in self.rooms.values() if room.hearts_out
        ]
        for room in self.rooms.values():
            room.hearts_out = 0
            if room.hearts_in:
                frame = Out(encoder.encode(Hearts(seq=room.last_seq, count=room.hearts_in)))
                room.hearts_in = 0
                room.broadcast(frame)
            if stock_too and room.stock:
                items = [StockItem(sku, n) for sku, n in room.stock.items()]
                room.stock = {}
                room.broadcast(Out(encoder.encode(StockChanged(seq=room.last_seq, items=items))))
            if stock_too and room.sales:
                sold = [SaleItem(sku, n) for sku, n in room.sales.items()]
                room.sales = {}
                room.broadcast(Out(encoder.encode(Sold(seq=room.last_seq, items=sold))))
        if outgoing:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    send = pipe.spublish if self._shards is not None else pipe.publish
                    for show_id, count in outgoing:
                        send(keys.show_channel(show_id), b'{"type":"hearts","count":%d}' % count)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("publishing hearts failed: %s", exc)

    async def _presence(self) -> None:
        """Once a second: report this process's viewers per show and relay changed totals."""
        while True:
            await asyncio.sleep(PRESENCE_SECONDS)
            for show_id, room in list(self.rooms.items()):
                try:
                    total = await self.bus.presence(
                        show_id, self.process, room.counted(self.crowd), PRESENCE_TTL_MS
                    )
                except asyncio.CancelledError:
                    raise
                except LivesaleError as exc:
                    log.warning("presence of %s: %s", show_id, exc)
                    continue
                if not room.conns:
                    if self.rooms.get(show_id) is room:
                        del self.rooms[show_id]
                    continue
                if total != room.presence:
                    room.presence = total
                    room.broadcast(Out(encoder.encode(Presence(seq=room.last_seq, viewers=total))))
                if self._shards is not None:
                    with contextlib.suppress(LivesaleError):
                        room.skus = frozenset(await self.shows.lineup_skus(show_id))
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the rooms' channels failed")
            background.check_cancelled()


#: The room hub's part of :class:`~livesale.services.Services`.
ROOM: Part[Hub] = Part("room")


async def start(services: Services) -> Hub:
    """Start this process's room hub (registered in ``livesale.app.STARTERS``)."""
    hub = Hub(services)
    await hub.start()
    services.provide(ROOM, hub)
    return hub
