"""Frame assembly for the publisher's RTP streams, tuned for the relay's latency.

aiortc's receiver hands every depayloaded RTP packet to its jitter buffer through
``add(packet) -> (pli_flag, frame_or_none)``; the adapter :mod:`livesale.media._aiortc` puts
these assemblers in its place and hands them each packet as a :class:`Packet`. Its stock
buffer releases a video frame only when the *next* frame's first packet arrives, holds audio
back by four frames, and waits up to 512 packets (~4 s) for a loss NACK cannot repair. The
assemblers here take its place on the publisher's receivers and hand each complete frame
straight to the relay:

* video is released as soon as the packet carrying the marker bit completes a contiguous run
  (RFC 3550 §5.1: the marker ends a frame), several frames at once if a retransmission fills a gap;
* audio (one Opus frame per packet) is released on arrival, with no prefetch;
* a gap that retransmission has not filled within ``max_wait`` seconds is given up: the partial
  frames are dropped and ``on_loss`` tells the relay to re-synchronise viewers on a keyframe.

Pure logic: packets in, callbacks out; no I/O and no ``await``. Returning ``(False, None)`` to
aiortc keeps its own decoder path idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

SEQ_MOD = 1 << 16
HALF_SEQ = SEQ_MOD // 2


class RtpLike(Protocol):
    """What the assemblers read of a packet: its RTP header fields and depayloaded ``data``."""

    @property
    def sequence_number(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def marker(self) -> int: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def data(self) -> bytes: ...


class Packet(NamedTuple):
    """One received RTP packet as the assemblers see it."""

    sequence_number: int
    timestamp: int
    marker: int
    ssrc: int
    #: The payload, depayloaded (for video: the codec's bitstream, e.g. Annex B for H.264).
    data: bytes


#: ``on_frame(data, rtp_timestamp, ssrc)`` receives one complete encoded frame.
FrameCallback = Callable[[bytes, int, int], None]
LossCallback = Callable[[], None]


def seq_distance(later: int, earlier: int) -> int:
    """Signed distance from ``earlier`` to ``later`` in 16-bit sequence-number space."""
    delta = (later - earlier) % SEQ_MOD
    return delta - SEQ_MOD if delta >= HALF_SEQ else delta


class VideoAssembler:
    """Reassembles video frames from RTP packets and releases each on its marker bit."""

    def __init__(
        self,
        on_frame: FrameCallback,
        on_loss: LossCallback,
        *,
        capacity: int = 512,
        max_wait: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_frame = on_frame
        self._on_loss = on_loss
        self._capacity = capacity
        self._max_wait = max_wait
        self._clock = clock
        #: Next sequence number to consume; ``None`` until a frame boundary has been seen.
        self._cursor: int | None = None
        #: Packets that arrived ahead of ``_cursor`` (out of order or after a loss).
        self._early: dict[int, RtpLike] = {}
        self._pending: list[RtpLike] = []
        self._gap_since: float | None = None
        self.frames = 0
        self.losses = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet: RtpLike) -> tuple[bool, None]:
        """Take one packet; complete frames go to ``on_frame`` before this returns.

        Returns ``(False, None)``: aiortc must neither send its own PLI nor decode anything.
        """
        seq = packet.sequence_number
        if self._cursor is None:
            # Start on a frame boundary: the packet after one carrying the marker bit.
            if packet.marker:
                self._cursor = (seq + 1) % SEQ_MOD
            return False, None
        distance = seq_distance(seq, self._cursor)
        if distance < 0:
            return False, None  # a duplicate or a retransmission of something already released
        if distance >= self._capacity:
            self._give_up()
            if packet.marker:
                self._cursor = (seq + 1) % SEQ_MOD
            return False, None
        self._early[seq] = packet
        self._drain()
        if self._early:
            now = self._clock()
            if self._gap_since is None:
                self._gap_since = now
            elif now - self._gap_since > self._max_wait:
                self._skip_gap()
        else:
            self._gap_since = None
        return False, None

    def _drain(self) -> None:
        cursor = self._cursor
        assert cursor is not None
        early = self._early
        pending = self._pending
        while True:
            packet = early.pop(cursor, None)
            if packet is None:
                break
            if pending and packet.timestamp != pending[0].timestamp:
                # A new timestamp ends the previous frame even if its marker got lost.
                self._emit()
            pending.append(packet)
            cursor = (cursor + 1) % SEQ_MOD
            if packet.marker:
                self._emit()
        self._cursor = cursor

    def _emit(self) -> None:
        pending = self._pending
        first = pending[0]
        data = b"".join(p.data for p in pending)
        pending.clear()  # in place: _drain holds a reference to this list
        self.frames += 1
        self._on_frame(data, first.timestamp, first.ssrc)

    def _skip_gap(self) -> None:
        """Give up on the missing packets: drop partial frames, restart after the next marker."""
        assert self._cursor is not None
        cursor = self._cursor
        ordered = sorted(self._early, key=lambda s: seq_distance(s, cursor))
        self._pending = []
        self._gap_since = None
        self.losses += 1
        self._on_loss()
        # Resume right after the first marker beyond the gap; the frame it ends is incomplete.
        for index, seq in enumerate(ordered):
            if self._early[seq].marker:
                for dropped in ordered[: index + 1]:
                    del self._early[dropped]
                self._cursor = (seq + 1) % SEQ_MOD
                self._drain()
                if self._early:
                    self._gap_since = self._clock()
                return
        # No marker yet: wait for one, like at the start.
        self._early.clear()
        self._cursor = None

    def _give_up(self) -> None:
        self._early.clear()
        self._pending = []
        self._gap_since = None
        self._cursor = None
        self.losses += 1
        self._on_loss()

    def remove(self, count: int) -> None:
        """Part of aiortc's jitter-buffer interface; nothing is held that could be removed."""

    def smart_remove(self, count: int) -> bool:
        """Part of aiortc's jitter-buffer interface; nothing is held that could be removed."""
        return False


class AudioAssembler:
    """Releases every audio packet (one Opus frame) the moment it arrives: no prefetch."""

    def __init__(self, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame
        self._last: int | None = None
        self.frames = 0

    @property
    def capacity(self) -> int:
        return 16

    def add(self, packet: RtpLike) -> tuple[bool, None]:
        """Release ``packet`` unless it is older than one already released."""
        seq = packet.sequence_number
        if self._last is not None and seq_distance(seq, self._last) <= 0:
            return False, None  # late: the frames after it are already out; concealment copes
        self._last = seq
        self.frames += 1
        self._on_frame(packet.data, packet.timestamp, packet.ssrc)
        return False, None

    def remove(self, count: int) -> None:
        """Part of aiortc's jitter-buffer interface; nothing is held that could be removed."""

    def smart_remove(self, count: int) -> bool:
        """Part of aiortc's jitter-buffer interface; nothing is held that could be removed."""
        return False
