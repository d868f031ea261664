"""Sending the relay's frames to viewers: packetised once per show, only re-headered per viewer.

aiortc's sender would packetise every frame again for every viewer (``encoder.pack()``), build
an ``RtpPacket`` object per packet, pack its header extensions and read the clock twice per
packet. For a relay that is most of the Python work per viewer, and all of it is the same for
every viewer except the 12-byte RTP header. So:

* :class:`Packetizer` turns each frame into RTP payloads once, for every viewer of a show
  (aiortc's VP8/H.264 payloaders for video, one payload per Opus frame for audio);
* :func:`install_sender` replaces a viewer sender's RTP loop with :func:`_send_frames`, which
  prepends a header with the viewer's own sequence number, timestamp origin and SSRC to those
  shared payloads, hands the bytes to the sender's DTLS transport (SRTP, then UDP), keeps them
  for NACKs (RFC 4585 §6.2.1, sent as RTX per RFC 4588 when negotiated) and keeps the counters
  aiortc's RTCP sender reports read. RTCP, PLI/FIR and stats stay aiortc's.

The header extensions (MID, RFC 8843; abs-send-time) are built once per frame per viewer: a
frame's packets leave in one burst, which is also how receivers group them for bandwidth
estimation. The aiortc internals used here are checked by
:func:`livesale.media.internals.check_aiortc_internals`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from fractions import Fraction
from struct import Struct
from typing import Any

import av
from aiortc import clock
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions

log = logging.getLogger("livesale.media")

_HEADER = Struct("!BBHLL")
_EXTENSION = Struct("!HH")
_SEQUENCE = Struct("!H")
_VERSION_2 = 0x80
_HAS_EXTENSION = 0x10
_MARKER = 0x80
_VIDEO_TIME_BASE = Fraction(1, 90_000)


class RtpFrame:
    """One encoded frame as RTP payloads, shared (read-only) by every viewer's sender."""

    __slots__ = ("payloads", "timestamp", "keyframe", "size")

    def __init__(self, payloads: list[bytes], timestamp: int, keyframe: bool, size: int) -> None:
        self.payloads = payloads
        #: On the show's continuous timeline, in the media clock (each viewer adds its origin).
        self.timestamp = timestamp
        self.keyframe = keyframe
        #: Bytes of the encoded frame.
        self.size = size


class Packetizer:
    """Splits encoded frames of one codec into RTP payloads, once for every viewer."""

    def __init__(self, codec: Any) -> None:
        """``codec``: the ``RTCRtpCodecCapability`` the show is sent as (VP8, H.264 or Opus)."""
        self.mime_type = str(codec.mimeType).lower()
        # aiortc's payloaders live on its encoder classes; ``pack`` never encodes anything.
        self._encoder: Any = None if self.mime_type == "audio/opus" else get_encoder(codec)

    def packetize(self, data: bytes, timestamp: int, keyframe: bool) -> RtpFrame:
        """The RTP payloads of one frame (VP8 picture IDs count frames of the whole show)."""
        if self._encoder is None:
            payloads = [data]  # RFC 7587 §4.2: one Opus packet per RTP payload
        else:
            packet = av.Packet(data)
            packet.pts = timestamp
            packet.time_base = _VIDEO_TIME_BASE
            payloads, _ = self._encoder.pack(packet)
        return RtpFrame(payloads, timestamp, keyframe, len(data))


class _History:
    """The last :data:`RTP_HISTORY_SIZE` packets a viewer was sent, unencrypted, by number."""

    __slots__ = ("packets",)

    def __init__(self) -> None:
        self.packets: list[bytes | None] = [None] * RTP_HISTORY_SIZE


def install_sender(sender: RTCRtpSender, track: Any) -> None:
    """Make ``sender`` send ``track``'s :class:`RtpFrame` objects with :func:`_send_frames`.

    Must be called before the sender starts (before the viewer's offer is applied).
    """
    history = _History()

    async def run_rtp(codec: Any) -> None:
        await _send_frames(sender, track, codec, history)

    async def retransmit(sequence_number: int) -> None:
        await _retransmit(sender, history, sequence_number)

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]


async def _send_frames(sender: Any, track: Any, codec: Any, history: _History) -> None:
    """The viewer's RTP loop: one header per packet around the shared payloads."""
    sender._RTCRtpSender__rtp_started.set()
    payload_type = codec.payloadType
    ssrc = sender._ssrc
    mid = sender._RTCRtpSender__mid
    extensions_map = sender._RTCRtpSender__rtp_header_extensions_map
    # RFC 3550 §5.1: random initial sequence number (lower half: SRTP rollover) and timestamp.
    sequence = random.randrange(1 << 15)
    origin = random.getrandbits(32)
    packets = sender._RTCRtpSender__packet_count
    octets = sender._RTCRtpSender__octet_count
    slots = history.packets
    pack_header = _HEADER.pack
    extensions = HeaderExtensions()
    extensions.mid = mid
    try:
        while True:
            frame = await track.recv()
            send = sender.transport._send_rtp
            timestamp = (origin + frame.timestamp) & 0xFFFFFFFF
            ntp = clock.current_ntp_time()
            extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
            profile, value = extensions_map.set(extensions)
            if value:
                first = _VERSION_2 | _HAS_EXTENSION
                block = _EXTENSION.pack(profile, len(value) >> 2) + value
            else:
                first, block = _VERSION_2, b""
            payloads = frame.payloads
            last = len(payloads) - 1
            for index, payload in enumerate(payloads):
                second = payload_type | _MARKER if index == last else payload_type
                data = pack_header(first, second, sequence, timestamp, ssrc) + block + payload
                slots[sequence % RTP_HISTORY_SIZE] = data
                await send(data)
                octets += len(payload)
                sequence = (sequence + 1) & 0xFFFF
            packets += len(payloads)
            # What aiortc's RTCP sender reports (RFC 3550 §6.4.1) and getStats() read.
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = timestamp
            sender._RTCRtpSender__packet_count = packets
            sender._RTCRtpSender__octet_count = octets
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        log.exception("sending to a viewer failed")
    finally:
        track.stop()
        sender._RTCRtpSender__rtp_exited.set()


async def _retransmit(sender: Any, history: _History, sequence_number: int) -> None:
    """Resend a packet a viewer reported lost (NACK), as RTX when negotiated (RFC 4588 §4)."""
    data = history.packets[sequence_number % RTP_HISTORY_SIZE]
    if data is None or _SEQUENCE.unpack_from(data, 2)[0] != sequence_number:
        return
    rtx_payload_type = sender._RTCRtpSender__rtx_payload_type
    if rtx_payload_type is not None:
        start = 12
        if data[0] & _HAS_EXTENSION:
            start += 4 + 4 * _EXTENSION.unpack_from(data, 14)[1]
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
    try:
        await sender.transport._send_rtp(data)
    except ConnectionError:
        pass
