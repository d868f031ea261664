"""What the app sees of the server's transport: direct WebSocket frame writes, and the limits
the server's protocols hold every connection to (:class:`EdgeLimits`, :class:`AddressCounts`).

The server's protocol classes (:mod:`livesale._uvicorn`) offer the app a :class:`FrameSink` in
the ASGI scope (``scope["extensions"][DIRECT_FRAMES]["sink"]``): frames built once with
:func:`text_frame` are written straight to the transport, without a task switch or a
per-connection encoding. Without it (uvicorn's own protocols) the app sends frames the ASGI
way, with the same result.
"""

from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Protocol

from websockets.frames import Frame, Opcode

#: Time allowed from connecting to the end of the request headers.
HANDSHAKE_SECONDS = 5.0
#: Request line and headers, in bytes: browsers send a few KiB at most (cookies included).
MAX_HEADER_BYTES = 16 * 1024
#: Time allowed from the end of the request headers to the end of the body.
BODY_SECONDS = 30.0
#: Open connections (HTTP and WebSocket) from one client address: far above what the phones
#: behind one shop Wi-Fi or mobile carrier NAT open, far below the process's file descriptors.
MAX_CONNECTIONS_PER_ADDRESS = 256


@dataclass(frozen=True, kw_only=True)
class EdgeLimits:
    """What one client may take of the server before it is answered with a refusal."""

    max_header_bytes: int = MAX_HEADER_BYTES
    body_seconds: float = BODY_SECONDS
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS


class AddressCounts:
    """Open connections per client address, capped.

    Each connection calls :meth:`enter` once when it opens and, if admitted, :meth:`leave` once
    when it is gone. Connections without an address (a unix socket) are not counted.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def enter(self, address: str | None, *, admit: bool = False) -> bool:
        """Count a new connection from ``address``; ``False`` (and not counted) when the address
        already has :attr:`cap` open, unless ``admit`` (a connection changing protocol)."""
        if address is None:
            return True
        count = self._open.get(address, 0)
        if count >= self.cap and not admit:
            return False
        self._open[address] = count + 1
        return True

    def leave(self, address: str | None) -> None:
        """Forget one connection of ``address`` that :meth:`enter` admitted."""
        if address is None:
            return
        count = self._open.pop(address, 0) - 1
        if count > 0:
            self._open[address] = count

    def open(self, address: str) -> int:
        """How many connections ``address`` has open."""
        return self._open.get(address, 0)


def refusal(status: int, reason: str) -> bytes:
    """A complete response refusing a request with ``status`` and a one-line ``reason``, after
    which the server closes the connection (``Connection: close``, RFC 9112 §9.6)."""
    body = reason.encode("ascii") + b"\n"
    phrase = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


#: The ASGI scope extension (``{"sink": FrameSink}``) offering a WebSocket's direct writes.
DIRECT_FRAMES = "livesale.direct_frames"


class FrameSink(Protocol):
    """Synchronous frame writes to one open WebSocket.

    The caller keeps frames in order itself: it writes directly only while :meth:`ready` and
    nothing of its own is waiting; otherwise it queues and, before each queued write, awaits
    :meth:`drain`.
    """

    def ready(self) -> bool:
        """The socket is open and its write buffer is below the high-water mark."""
        ...

    def write(self, wire: bytes) -> None:
        """Write one complete frame from :func:`text_frame`; call only when :meth:`ready`."""
        ...

    async def drain(self) -> bool:
        """Wait until the write buffer is below its low-water mark; ``False`` once the socket
        is closing or gone (nothing more may be written)."""
        ...


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 §5.2; a server never masks, §5.1) carrying
    ``payload`` (UTF-8), the same bytes for every connection without extensions."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


#: Bytes the transport may buffer for a WebSocket before it counts as not writable; past it,
#: frames wait in the app's bounded queue (and a viewer that never drains it is dropped).
WRITE_HIGH_WATER = 64 * 1024

#: Kernel send buffer of a WebSocket. Linux grows it up to 4 MiB per socket by default; room
#: frames are small, and a bounded buffer keeps memory per viewer low and lets the hub notice a
#: viewer that stopped reading (its queue fills and it is dropped with 1013).
WS_SNDBUF = 128 * 1024
