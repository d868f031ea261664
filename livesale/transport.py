"""uvicorn protocol classes with the deadlines uvicorn leaves open.

* :class:`DeadlineHttpProtocol`: a connection must finish sending its request headers within
  :data:`HANDSHAKE_SECONDS` of connecting (or of starting its next request); uvicorn otherwise
  keeps a client that sends half a request — or nothing — forever. This covers the HTTP half of
  the WebSocket opening handshake.
* :class:`DeadlineWebSocketProtocol`: when the keepalive ping goes unanswered or the closing
  handshake times out, the transport is aborted. uvicorn calls ``transport.close()``, which waits
  for the write buffer to drain — forever when the peer has stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from asyncio import BaseTransport, TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("livesale")

#: Time allowed from connecting to the end of the request headers.
HANDSHAKE_SECONDS = 5.0


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
        super().on_headers_complete()

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


#: Kernel send buffer of a WebSocket. Linux grows it up to 4 MiB per socket by default; room
#: frames are small, and a bounded buffer keeps memory per viewer low and lets the hub notice a
#: viewer that stopped reading (its queue fills and it is dropped with 1013).
WS_SNDBUF = 128 * 1024


class DeadlineWebSocketProtocol(WebSocketsSansIOProtocol):
    """websockets-sansio with a bounded send buffer, aborting connections whose peer stopped
    reading."""

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SNDBUF)

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
