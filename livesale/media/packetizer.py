"""Encoded frames as RTP payloads: packetised once per show, shared by every viewer's sender.

:class:`Packetizer` turns each frame into RTP payloads once, for every viewer of a show (aiortc's
VP8/H.264 payloaders for video, one payload per Opus frame for audio), and stamps it with the
time it was relayed; each viewer's sender (:mod:`livesale.media._aiortc.sender`) only puts its
own 12-byte header on the shared payloads.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
from aiortc import clock
from aiortc.codecs import get_encoder

_VIDEO_TIME_BASE = Fraction(1, 90_000)


class RtpFrame:
    """One encoded frame as RTP payloads, shared (read-only) by every viewer's sender."""

    __slots__ = ("payloads", "timestamp", "keyframe", "size", "ntp")

    def __init__(self, payloads: list[bytes], timestamp: int, keyframe: bool, size: int) -> None:
        self.payloads = payloads
        #: On the show's continuous timeline, in the media clock (each viewer adds its origin).
        self.timestamp = timestamp
        self.keyframe = keyframe
        #: Bytes of the encoded frame.
        self.size = size
        #: When the relay got the frame (64-bit NTP format): its send time for every viewer
        #: (abs-send-time) and the wallclock its timestamp maps to in sender reports.
        self.ntp = clock.current_ntp_time()


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
