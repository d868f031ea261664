"""uvicorn protocol classes with the deadlines uvicorn leaves open (used only when the checks
of :mod:`livesale._uvicorn` pass).

* :class:`DeadlineHttpProtocol`: a connection must finish sending its request headers within
  :data:`HANDSHAKE_SECONDS` of connecting (or of starting its next request); uvicorn otherwise
  keeps a client that sends half a request — or nothing — forever. This covers the HTTP half of
  the WebSocket opening handshake. It also sends each response's head with its body, in one
  write (:class:`HeadWithBody`).
* :class:`DeadlineWebSocketProtocol`: when the keepalive ping goes unanswered or the closing
  handshake times out, the transport is aborted. uvicorn calls ``transport.close()``, which waits
  for the write buffer to drain — forever when the peer has stopped reading.

It also offers the app a :class:`~livesale.transport.FrameSink` in the ASGI scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from asyncio import BaseTransport, TimerHandle
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from livesale.transport import (
    DIRECT_FRAMES,
    HANDSHAKE_SECONDS,
    WRITE_HIGH_WATER,
    WS_SNDBUF,
)

log = logging.getLogger("livesale")

#: The server's own generator for ping timing and payloads: drawing from the ``random``
#: module's shared one would move the state of everyone else's (another thread's, too).
_random = random.Random()


class DeadlineHttpProtocol(HttpToolsProtocol):
    """httptools' protocol, closing connections whose request headers are late."""

    _deadline: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # Not a WebSocket upgrade, and not HEAD: uvicorn writes no body for HEAD (RFC 9110
        # §9.3.2), so its head is the whole answer and leaves at once.
        if cycle is not None and cycle is not previous and self.scope["method"] != "HEAD":
            cycle.transport = HeadWithBody(self.transport, cycle)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

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


class DeadlineWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio with a bounded send buffer, aborting connections whose peer stopped
    reading."""

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
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
        if message["type"] == "websocket.close" and self.close_timer is not None:
            # The closing handshake gets ``close_timeout``; then the connection is cut even if
            # unsent data is still buffered.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
