"""Sending the relay's frames to viewers, below aiortc's sender: only re-headered per viewer.

aiortc's sender would packetise every frame again for every viewer (``encoder.pack()``), build
an ``RtpPacket`` object per packet, pack its header extensions, read the clock twice per packet
and pass each packet down five coroutines (DTLS, ICE transport, ICE connection, pair, protocol)
that never suspend, from a task woken once per frame. For a relay that is most of the work per
viewer, and all of it is the same for every viewer except the 12-byte RTP header. So
:func:`install_sender` replaces a viewer sender's RTP loop: it attaches a :class:`ViewerStream`
to the viewer's track, and the channel's fan-out calls :meth:`ViewerStream.send` for each
:class:`~livesale.media.packetizer.RtpFrame`. That prepends a header with the viewer's own
sequence number, timestamp origin and SSRC, and the viewer's header extensions (a template built
once, with the frame's send time filled in) to the shared payloads, encrypts them
(:func:`srtp_protect`) and writes them to the UDP socket of the viewer's ICE pair. It keeps the
packets for NACKs (RFC 4585 §6.2.1, sent as RTX per RFC 4588 when negotiated) and the counters
aiortc's RTCP sender reports and stats read. RTCP, PLI/FIR and stats stay aiortc's.

Every private name of aiortc, aioice and pylibsrtp used here is in the table of
:mod:`livesale.media._aiortc`, checked at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from struct import Struct
from typing import Any, Protocol

import pylibsrtp
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from livesale.media.metrics import MediaStats
from livesale.media.packetizer import RtpFrame

log = logging.getLogger("livesale.media")

_HEADER = Struct("!BBHLL")
_EXTENSION = Struct("!HH")
_SEQUENCE = Struct("!H")
_VERSION_2 = 0x80
_HAS_EXTENSION = 0x10
_MARKER = 0x80
#: Bytes a viewer's UDP socket may have waiting unsent before that viewer counts as behind (its
#: frames stop until the next keyframe). The kernel rarely refuses a datagram; when it does, the
#: transport keeps it, and this bounds how much it keeps.
UNSENT_LIMIT = 256 * 1024


class ViewerTrack(Protocol):
    """What the sender needs of a viewer's track (:class:`livesale.media.relay.RelayTrack`)."""

    async def attach(self, sink: Callable[[RtpFrame], bool]) -> None: ...

    def stop(self) -> None: ...


def install_sender(sender: RTCRtpSender, track: ViewerTrack, stats: MediaStats) -> None:
    """Make ``sender`` send ``track``'s :class:`RtpFrame` objects through a :class:`ViewerStream`.

    Must be called before the sender starts (before the viewer's offer is applied).
    """
    stream: ViewerStream | None = None
    private: Any = sender  # the name-mangled attributes below

    async def run_rtp(codec: Any) -> None:
        nonlocal stream
        private._RTCRtpSender__rtp_started.set()  # stop() waits for it
        try:
            stream = ViewerStream(sender, codec)
            await track.attach(stream.send)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            log.exception("sending to a viewer failed")
        finally:
            track.stop()
            private._RTCRtpSender__rtp_exited.set()

    async def retransmit(sequence_number: int) -> None:
        if stream is not None:
            with contextlib.suppress(ConnectionError):
                if stream.retransmit(sequence_number):
                    stats.retransmissions += 1

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]


class ViewerStream:
    """One viewer's RTP stream of one kind, written synchronously as frames arrive.

    :meth:`send` runs inside the channel's fan-out: it puts this viewer's header on each shared
    payload, encrypts it (SRTP) and hands it to the UDP socket of the viewer's selected ICE
    pair. aiortc's own path takes five coroutines per packet (DTLS transport, ICE transport, ICE
    connection, pair, protocol) that never suspend, and a task wake-up per frame; for a relay
    they are most of the cost of a viewer.
    """

    def __init__(self, sender: Any, codec: Any) -> None:
        self._sender = sender
        self._payload_type = codec.payloadType
        self._ssrc = sender._ssrc
        # RFC 3550 §5.1: random initial sequence number (lower half: SRTP rollover) and
        # timestamp origin.
        self._sequence = secrets.randbelow(1 << 15)
        self._origin = secrets.randbits(32)
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE
        self._first, self._before_time, self._after_time = extension_template(
            sender._RTCRtpSender__rtp_header_extensions_map, sender._RTCRtpSender__mid
        )
        self._wire: _Wire | None = None

    def send(self, frame: RtpFrame) -> bool:
        """Send every packet of ``frame``; ``False`` (nothing sent) when the socket is backed up.

        Raises ``ConnectionError`` once the viewer's transport is closed.
        """
        wire = self._current_wire()
        if wire.unsent() > UNSENT_LIMIT:
            return False
        sendto = wire.sendto
        address = wire.address
        protect = wire.protect
        ntp = frame.ntp
        timestamp = (self._origin + frame.timestamp) & 0xFFFFFFFF
        block = self._before_time
        if self._after_time is not None:
            # abs-send-time: 24 bits, 6.18 fixed-point seconds (the NTP time's middle bits).
            block += ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big") + self._after_time
        first = self._first
        payload_type = self._payload_type
        ssrc = self._ssrc
        sequence = self._sequence
        slots = self._history
        pack_header = _HEADER.pack
        payloads = frame.payloads
        last = len(payloads) - 1
        octets = 0
        wire_bytes = 0
        for index, payload in enumerate(payloads):
            second = payload_type | _MARKER if index == last else payload_type
            data = pack_header(first, second, sequence, timestamp, ssrc) + block + payload
            slots[sequence % RTP_HISTORY_SIZE] = data
            encrypted = protect(data)
            sendto(encrypted, address)
            wire_bytes += len(encrypted)
            octets += len(payload)
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        # What aiortc's RTCP sender reports (RFC 3550 §6.4.1) and getStats() read.
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__packet_count += len(payloads)
        sender._RTCRtpSender__octet_count += octets
        wire.sent(len(payloads), wire_bytes)
        return True

    def retransmit(self, sequence_number: int) -> bool:
        """Resend a packet the viewer reported lost (NACK), as RTX when negotiated (RFC 4588);
        ``False`` when it is no longer in the history."""
        data = self._history[sequence_number % RTP_HISTORY_SIZE]
        if data is None or _SEQUENCE.unpack_from(data, 2)[0] != sequence_number:
            return False
        sender = self._sender
        rtx_payload_type = sender._RTCRtpSender__rtx_payload_type
        if rtx_payload_type is not None:
            start = 12
            if data[0] & _HAS_EXTENSION:
                start += 4 + 4 * _EXTENSION.unpack_from(data, 12)[1]  # (profile, length in words)
            rtx_sequence = sender._RTCRtpSender__rtx_sequence_number
            sender._RTCRtpSender__rtx_sequence_number = (rtx_sequence + 1) & 0xFFFF
            header = _HEADER.pack(
                data[0],
                (data[1] & _MARKER) | rtx_payload_type,
                rtx_sequence,
                int.from_bytes(data[4:8], "big"),
                sender._rtx_ssrc,
            )
            # The RTX payload starts with the original sequence number (OSN).
            data = header + data[12:start] + data[2:4] + data[start:]
        wire = self._current_wire()
        encrypted = wire.protect(data)
        wire.sendto(encrypted, wire.address)
        wire.sent(1, len(encrypted))
        return True

    def _current_wire(self) -> _Wire:
        """The viewer's wire, looked up again only when the connection under it changed."""
        wire = self._wire
        if wire is None or not wire.current():
            wire = self._wire = _Wire(self._sender)
        return wire


class _Wire:
    """Where a viewer's packets go: SRTP's ``protect`` of its DTLS transport and the UDP
    ``sendto`` and remote address of its selected ICE pair. Raises ``ConnectionError`` when the
    transport is not connected (as aiortc's own path does)."""

    __slots__ = ("dtls", "pair", "protect", "sendto", "address", "_udp", "_nominated")

    def __init__(self, sender: Any) -> None:
        dtls = sender.transport
        if dtls._state is not DtlsState.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        nominated = dtls.transport._connection._nominated
        pair = nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        udp = pair.protocol.transport
        if udp.is_closing():
            raise ConnectionError("Cannot send data, the socket is closed")
        self.dtls = dtls
        self.pair = pair
        self._nominated = nominated
        self.protect = srtp_protect(dtls._tx_srtp)
        self._udp = udp
        self.sendto: Callable[[bytes, tuple[str, int]], None] = udp.sendto
        self.address: tuple[str, int] = pair.remote_addr

    def current(self) -> bool:
        """Still connected through the same open pair (else look again, or fail)."""
        return (
            self.dtls._state is DtlsState.CONNECTED
            and self._nominated.get(1) is self.pair
            and not self._udp.is_closing()
        )

    def unsent(self) -> int:
        """Bytes the UDP transport holds because the kernel would not take them yet."""
        return int(self._udp.get_write_buffer_size())

    def sent(self, packets: int, octets: int) -> None:
        """Count what was sent where the DTLS transport's stats read it."""
        dtls = self.dtls
        dtls._RTCDtlsTransport__tx_packets += packets
        dtls._RTCDtlsTransport__tx_bytes += octets


def srtp_protect(session: pylibsrtp.Session) -> Callable[[bytes], bytes]:
    """``session.protect`` without its per-call allocation and checks.

    pylibsrtp's ``protect`` allocates a length cell and checks the type on every packet, which
    costs twice the encryption itself. This one does what ``Session.__process`` does with a
    cell made once: copy the packet into the session's buffer, encrypt it in place (libsrtp's
    ``srtp_protect``), return the result. Single-threaded, like the session's own buffer.
    """
    context = session._srtp[0]
    cdata = session._cdata
    buffer = session._buffer
    length = _srtp_ffi.new("int *")
    capacity = len(cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN
    protect_in_place = _srtp_lib.srtp_protect

    # ``owner``: the session frees ``context`` when it is collected, so it lives as long as this.
    def protect(packet: bytes, *, owner: pylibsrtp.Session = session) -> bytes:
        size = len(packet)
        if size > capacity:
            raise ValueError("packet is too long")
        length[0] = size
        buffer[0:size] = packet
        status = protect_in_place(context, cdata, length)
        if status:
            pylibsrtp._srtp_assert(status)  # type: ignore[no-untyped-call]  # raises its Error
        result: bytes = buffer[0 : length[0]]
        return result

    return protect


def extension_template(extensions_map: Any, mid: str | None) -> tuple[int, bytes, bytes | None]:
    """``(first header byte, extension block before the send time, after it)`` for a viewer
    whose negotiated extensions are ``extensions_map`` (aiortc's ``HeaderExtensionsMap``).

    Every packet carries the MID (RFC 8843) and abs-send-time header extensions when the viewer
    negotiated them (RFC 8285); only the 3-byte send time changes from frame to frame. aiortc's
    serializer builds the block twice with two send times, and the bytes that differ are the
    time's. ``after`` is ``None`` without abs-send-time (the block is then constant).
    """
    extensions = HeaderExtensions()
    extensions.mid = mid
    blocks = []
    for send_time in (0, 0xFFFFFF):
        extensions.abs_send_time = send_time
        profile, value = extensions_map.set(extensions)
        blocks.append(_EXTENSION.pack(profile, len(value) >> 2) + value if value else b"")
    low, high = blocks
    if not low:
        return _VERSION_2, b"", None
    if low == high:
        return _VERSION_2 | _HAS_EXTENSION, low, None
    at = next(i for i in range(len(low)) if low[i] != high[i])
    return _VERSION_2 | _HAS_EXTENSION, low[:at], low[at + 3 :]
