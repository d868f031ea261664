"""uvicorn protocol classes with the deadlines uvicorn leaves open (used only when the checks
of :mod:`livesale._uvicorn` pass).

* :class:`DeadlineHttpProtocol`: a connection must finish sending its request headers within
  :data:`HANDSHAKE_SECONDS` of connecting (or of starting its next request); uvicorn otherwise
  keeps a client that sends half a request — or nothing — forever. This covers the HTTP half of
  the WebSocket opening handshake. Headers over ``max_header_bytes`` are answered 431 (httptools
  has no limit of its own), a body not received within ``body_seconds`` of its headers 408, and
  a connection from an address that has ``max_connections_per_address`` open already 429; each
  then closes. It also sends each response's head with its body, in one write
  (:class:`HeadWithBody`).
* :class:`DeadlineWebSocketProtocol`: when the keepalive ping goes unanswered or the closing
  handshake times out, the transport is aborted. uvicorn calls ``transport.close()``, which waits
  for the write buffer to drain — forever when the peer has stopped reading. An open socket
  counts against its address's cap. An idle socket holds as little as it can: its inbox and
  writability flag are lighter than uvicorn's ``asyncio.Queue`` and ``asyncio.Event`` (four
  deques between them, allocated for every socket), and the handshake's headers are let go once
  it is answered.

It also offers the app a :class:`~livesale.transport.FrameSink` in the ASGI scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from asyncio import BaseTransport, TimerHandle
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from livesale.transport import (
    DIRECT_FRAMES,
    HANDSHAKE_SECONDS,
    WRITE_HIGH_WATER,
    WS_SNDBUF,
    AddressCounts,
    EdgeLimits,
    refusal,
)

log = logging.getLogger("livesale")

#: The server's own generator for ping timing and payloads: drawing from the ``random``
#: module's shared one would move the state of everyone else's (another thread's, too).
_random = random.Random()


class DeadlineHttpProtocol(HttpToolsProtocol):
    """httptools' protocol, with the limits of :class:`~livesale.transport.EdgeLimits`: late
    request headers, headers too large, late bodies and too many connections from one address
    are refused. Use :meth:`bound`, which gives each server its limits and its counts."""

    limits: ClassVar[EdgeLimits]
    counts: ClassVar[AddressCounts]

    _deadline: TimerHandle | None = None
    _body_timer: TimerHandle | None = None
    _address: str | None = None
    #: A refusal was sent (or the connection cut): nothing more is read or answered.
    _refused = False
    #: Between the start of a request and the end of its headers.
    _in_head = False
    #: The head began during the current ``feed_data``, so the chunk is not all head.
    _head_began = False
    #: Head bytes as the parser reported them (the target and complete header lines)...
    _head_bytes = 0
    #: ...and bytes of whole chunks that arrived inside the head, for a header line still
    #: being received, which the parser buffers before it reports it.
    _head_chunks = 0
    #: When the request headers ended, while the body is still being received.
    _body_since: float | None = None

    @classmethod
    def bound(cls, limits: EdgeLimits, counts: AddressCounts) -> type[DeadlineHttpProtocol]:
        """This protocol for one server, holding its connections to ``limits``."""
        return type(cls.__name__, (cls,), {"limits": limits, "counts": counts})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = peer_address(transport)
        if not self.counts.enter(address):
            # RFC 6585 §4: the client, not the server, is over its share.
            self._refuse(429, "too many connections from your address", answer=True)
            return
        self._address = address
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._head_began = False
        super().data_received(data)
        if self.transport.is_closing():  # refused, answered 400, or closed by the app
            return
        if self._in_head and not self._head_began:
            self._head_chunks += len(data)
            if self._head_chunks > self.limits.max_header_bytes:
                self._refuse_head()
        elif self._body_since is not None and self._body_timer is None:
            # Armed only once a read ends inside a body: most bodies come with their headers.
            self._body_timer = self.loop.call_at(
                self._body_since + self.limits.body_seconds, self._body_late
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._head_began = True
        self._head_bytes = self._head_chunks = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4)  # "name: value\r\n"

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:  # not a WebSocket upgrade
            self._body_since = self.loop.time()
            # Not HEAD: uvicorn writes no body for HEAD (RFC 9110 §9.3.2), so its head is the
            # whole answer and leaves at once.
            if self.scope["method"] != "HEAD":
                cycle.transport = HeadWithBody(self.transport, cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._body_since = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The WebSocket protocol counted this connection as its own in its connection_made.
        self._leave()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a parser callback that refused the request stops the parser
            super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._leave()
        super().connection_lost(exc)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head()
            raise HeadTooLarge  # stops the parser; data_received sends no 400 after it

    def _refuse_head(self) -> None:
        # RFC 6585 §5; answered only when no earlier request of the connection still awaits
        # its answer (this one would be read as that one's).
        cycle = self.cycle
        answer = not self.pipeline and (cycle is None or cycle.response_complete)
        self._refuse(431, "request headers too large", answer=answer)

    def _body_late(self) -> None:
        self._body_timer = None
        # RFC 9110 §15.5.9; answered unless the app has begun its own answer or the request
        # waits behind another one's.
        answer = not self.pipeline and not (self.cycle is not None and self.cycle.response_started)
        self._refuse(408, "request body not received in time", answer=answer)

    def _refuse(self, status: int, reason: str, *, answer: bool) -> None:
        """Stop reading, send the refusal if ``answer``, and close the connection once it is
        written."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(refusal(status, reason))
        self.transport.close()

    def _leave(self) -> None:
        self.counts.leave(self._address)
        self._address = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(HANDSHAKE_SECONDS, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


class HeadTooLarge(Exception):
    """Raised in a parser callback to stop httptools once the request head is over the limit."""


def peer_address(transport: BaseTransport) -> str | None:
    """The client's IP address, or ``None`` for a unix socket."""
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) and peer else None


class HeadWithBody:
    """The transport as one uvicorn response cycle sees it: the status line and headers are
    kept back and written together with the first part of the body.

    uvicorn writes the head when the app sends ``http.response.start`` and the body when it
    sends ``http.response.body``, two sends (two TCP segments) for every response; a buy click
    is answered in one. uvicorn writes every body message except a HEAD request's (an empty
    write for 204, 304 or an empty body), so the head always goes out; HEAD responses are
    therefore never wrapped. A streamed response's head leaves with its first chunk (livesale
    streams only files, read at once). A ``100 Continue`` comes before the response starts and
    is written at once.
    """

    __slots__ = ("_transport", "_cycle", "_head", "_started")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started and self._cycle.response_started:
            self._started = True  # uvicorn sets response_started, then writes the head
            self._head = data
            return
        if self._head is not None:
            data = self._head + data
            self._head = None
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class Inbox:
    """What uvicorn's WebSocket protocol needs of its queue of received events (``put_nowait``,
    ``get``, ``empty``), for the one reader an ASGI app is: no deque until an event waits, and
    a future only while the reader waits."""

    __slots__ = ("_events", "_reader")

    def __init__(self) -> None:
        self._events: deque[Any] | None = None
        self._reader: asyncio.Future[None] | None = None

    def put_nowait(self, event: Any) -> None:
        if self._events is None:
            self._events = deque()
        self._events.append(event)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def empty(self) -> bool:
        return not self._events

    async def get(self) -> Any:
        while not self._events:
            if self._reader is not None:
                raise RuntimeError("a WebSocket's events have one reader at a time")
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        event = self._events.popleft()
        if not self._events:
            self._events = None
        return event


class Flag:
    """``asyncio.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, with no list of waiters
    until one waits (a socket's writability: set nearly all the time, awaited rarely)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class DeadlineWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio with a bounded send buffer, aborting connections whose peer stopped
    reading. Each socket counts against its address's cap until it closes (:meth:`bound`
    shares the HTTP protocol's counts: a socket is an HTTP connection that changed protocol)."""

    counts: ClassVar[AddressCounts]
    _address: str | None = None

    @classmethod
    def bound(cls, counts: AddressCounts) -> type[DeadlineWebSocketProtocol]:
        """This protocol for one server, counting its sockets in ``counts``."""
        return type(cls.__name__, (cls,), {"counts": counts})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        writable = self.writable.is_set()
        self.writable = Flag()  # type: ignore[assignment]
        if writable:
            self.writable.set()

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        self._address = peer_address(transport)
        self.counts.enter(self._address, admit=True)  # the HTTP connection was admitted
        self.write = self.transport.write
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SNDBUF)
        with contextlib.suppress(AttributeError, NotImplementedError):
            transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Raw frames are only right without extensions (compression is off in livesale).
        if self.response.status_code == 101 and not self.conn.extensions:
            extensions = self.scope.get("extensions")
            if extensions is not None:
                extensions[DIRECT_FRAMES] = {"sink": self}

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.leave(self._address)
        self._address = None
        super().connection_lost(exc)

    # FrameSink (livesale.transport) -----------------------------------------------------------

    #: :meth:`FrameSink.write`: the transport's own ``write``, bound once (it runs once per
    #: viewer and frame, so no Python-level wrapper).
    write: Callable[[bytes], object]

    def ready(self) -> bool:
        # ``writable`` is cleared by pause_writing() (buffer above WRITE_HIGH_WATER) and set
        # again by resume_writing() or when the connection is lost. Every way out of the OPEN
        # state sets ``close_sent`` (our close, a protocol error, a missed pong) or closes the
        # transport (the peer's close), so those two stand for ``self.conn.state``.
        return self.writable.is_set() and not self.close_sent and not self.transport.is_closing()

    async def drain(self) -> bool:
        await self.writable.wait()
        return self.ready()

    # Keepalive --------------------------------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            # The first ping comes at a random point of the first interval, so the pings of
            # viewers who joined together (a show going live) do not all fall in one loop
            # iteration, every interval, as a burst that delays fan-out. A silent peer is still
            # gone within ``ping_interval + ping_timeout``.
            delay = _random.uniform(0.0, self.ping_interval)
            self.ping_timer = self.loop.call_later(delay, self.send_keepalive_ping)

    def send_keepalive_ping(self) -> None:
        """uvicorn's keepalive ping, with the frame written by hand: websockets' ``send_ping``
        builds it through its general frame serializer, which costs more than the write."""
        self.ping_timer = None
        if self.close_sent or self.transport.is_closing() or self.conn.state is not State.OPEN:
            return
        self.pending_ping_payload = payload = _random.getrandbits(32).to_bytes(4, "big")
        self.ping_sent_at = self.loop.time()
        # RFC 6455 §5.5.2: FIN + opcode 0x9 (ping), unmasked (§5.1), 4-byte payload.
        self.transport.write(b"\x89\x04" + payload)
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
        else:
            self.schedule_ping()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        # close() above waits for the buffer to drain; a peer that does not answer pings may
        # never read it.
        self.transport.abort()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake is answered: its request and response are never read again, yet the
            # request stays referenced (by the websockets parser's frame) as long as the socket.
            self.request.headers.clear()
            self.response.headers.clear()
        if message["type"] == "websocket.close" and self.close_timer is not None:
            # The closing handshake gets ``close_timeout``; then the connection is cut even if
            # unsent data is still buffered.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
