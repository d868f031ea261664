"""What the app sees of the server's transport: direct WebSocket frame writes, and the limits.

The server's protocol classes (:mod:`livesale._uvicorn`) offer the app a :class:`FrameSink` in
the ASGI scope (``scope["extensions"][DIRECT_FRAMES]["sink"]``): frames built once with
:func:`text_frame` are written straight to the transport, without a task switch or a
per-connection encoding. Without it (uvicorn's own protocols) the app sends frames the ASGI
way, with the same result.
"""

from __future__ import annotations

from typing import Protocol

from websockets.frames import Frame, Opcode

#: Time allowed from connecting to the end of the request headers.
HANDSHAKE_SECONDS = 5.0

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
