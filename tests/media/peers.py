"""Real aiortc peers for the media tests and the relay benchmark.

* :class:`PatternTrack` sends a synthetic moving pattern, encoded here with libvpx or libx264
  (PyAV) and handed to aiortc as ``av.Packet`` objects, so the publisher never calls aiortc's
  own encoders; it makes a keyframe whenever the relay asks for one (PLI/FIR).
* :class:`ToneTrack` sends Opus-encoded audio the same way.
* :func:`matches_pattern` tells a decoded frame from black or garbage.
* :class:`Publisher` and :class:`Viewer` are WHIP/WHEP clients around ``RTCPeerConnection``;
  they take a ``signal(offer_sdp) -> answer_sdp`` coroutine, so the same peers talk to the hub
  directly or to the HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import random
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from livesale.media._aiortc import redirect_keyframe_requests
from livesale.media.ice import IceConfig, rtc_configuration

Signal = Callable[[str], Awaitable[str]]

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
BLOCK = 16
DARK, LIGHT, BAR = 50, 170, 235
DARK_BIT, LIGHT_BIT = 16, 235
CHECK_SIZE = (20, 15)


def pattern_blocks(columns: int, rows: int, bar: int) -> list[list[int]]:
    """Luma of each block: a checkerboard with a bright bar in block column ``bar``."""
    return [
        [BAR if col == bar else (LIGHT if (col + row) % 2 else DARK) for col in range(columns)]
        for row in range(rows)
    ]


def pattern_frame(width: int, height: int, index: int) -> av.VideoFrame:
    """Frame ``index`` of the moving pattern: the bar advances one block per frame."""
    columns, rows = width // BLOCK, height // BLOCK
    blocks = pattern_blocks(columns, rows, index % columns)
    frame = av.VideoFrame(width, height, "yuv420p")
    y_plane = frame.planes[0]
    padding = bytes(y_plane.line_size - width)
    luma = b"".join(
        (b"".join(bytes([value]) * BLOCK for value in row) + padding) * BLOCK for row in blocks
    )
    y_plane.update(luma)
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * plane.buffer_size)
    return frame


#: Grain levels added to each luma sample: 0..GRAIN-1 (the pattern's brightest luma plus this
#: stays below 256).
GRAIN = 16
_GRAIN_LEVELS = bytes(b % GRAIN for b in range(256))


def add_grain(frame: av.VideoFrame, noise: random.Random) -> None:
    """Add 0..GRAIN-1 of random noise to every luma sample of ``frame`` (in place)."""
    y_plane = frame.planes[0]
    size = y_plane.buffer_size
    grain = noise.randbytes(size).translate(_GRAIN_LEVELS)
    # One big-integer addition adds byte by byte: no sample overflows, so nothing carries.
    noisy = int.from_bytes(bytes(y_plane), "big") + int.from_bytes(grain, "big")
    y_plane.update(noisy.to_bytes(size, "big"))


def matches_pattern(frame: av.VideoFrame) -> int | None:
    """The bar's block column if ``frame`` shows the pattern, ``None`` if black or garbage.

    The frame is scaled to one pixel per block and compared with the pattern for the bar
    position found in it: the mean error must stay well under the light/dark difference.
    """
    columns, rows = frame.width // BLOCK, frame.height // BLOCK
    small = frame.reformat(width=columns, height=rows, format="gray", interpolation="AREA")
    plane = small.planes[0]
    data = bytes(plane)
    pixels = [list(data[r * plane.line_size : r * plane.line_size + columns]) for r in range(rows)]
    column_means = [sum(pixels[r][c] for r in range(rows)) / rows for c in range(columns)]
    bar = max(range(columns), key=lambda c: column_means[c])
    if column_means[bar] < BAR - 30:
        return None
    expected = pattern_blocks(columns, rows, bar)
    error = sum(abs(pixels[r][c] - expected[r][c]) for r in range(rows) for c in range(columns)) / (
        rows * columns
    )
    return bar if error < 25 else None


def stamp_row(width: int, line_size: int, value: int) -> bytes:
    """Luma of the top block row carrying ``value`` in binary, most significant bit left.

    One bit per block column (white for 1, black for 0): big enough to survive any encoder.
    """
    columns = width // BLOCK
    line = b"".join(
        bytes([LIGHT_BIT if value >> (columns - 1 - col) & 1 else DARK_BIT]) * BLOCK
        for col in range(columns)
    )
    line += bytes(line_size - len(line))
    return line * BLOCK


def read_stamp(frame: av.VideoFrame) -> int:
    """The value :func:`stamp_row` painted into ``frame``'s top block row."""
    plane = frame.planes[0]
    data = memoryview(plane)
    columns = frame.width // BLOCK
    value = 0
    for col in range(columns):
        total = 0
        for y in (BLOCK // 2 - 2, BLOCK // 2 + 2):
            start = y * plane.line_size + col * BLOCK + BLOCK // 2 - 2
            total += sum(data[start : start + 4])
        value = value << 1 | (1 if total / 8 > (LIGHT_BIT + DARK_BIT) / 2 else 0)
    return value


def wall_ms() -> int:
    """Wall-clock milliseconds (shared by every process on the machine)."""
    return time.time_ns() // 1_000_000


class PatternTrack(MediaStreamTrack):
    """A video track yielding pre-encoded frames of the moving pattern at ``fps``."""

    kind = "video"

    def __init__(
        self,
        codec: str = "vp8",
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 30,
        bitrate: int = 600_000,
        keyframe_every: float | None = None,
        stamp: bool = False,
        grain: bool = False,
    ) -> None:
        """``stamp``: paint each frame's capture time (:func:`wall_ms`, modulo ``2**(width //
        BLOCK)``) into its top block row, for :func:`read_stamp` at the far end. ``grain``: add
        sensor-like noise to every pixel, so that the encoder spends the whole ``bitrate`` as
        it does on a camera's picture (the bare pattern needs a fraction of it)."""
        super().__init__()
        self.codec_name = codec
        self.fps = fps
        self.width, self.height = width, height
        self.keyframe_every = keyframe_every
        self.force_keyframe = True
        self.keyframes = 0
        self.frames = 0
        self.capture_times: dict[int, float] = {}
        self._start: float | None = None
        self._last_keyframe = 0.0
        if codec == "vp8":
            self._encoder = av.CodecContext.create("libvpx", "w")
            self._encoder.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "auto-alt-ref": "0",
                "error-resilient": "1",
            }
        else:
            self._encoder = av.CodecContext.create("libx264", "w")
            self._encoder.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "profile": "baseline",
                "forced-idr": "1",
            }
        self._encoder.width = width
        self._encoder.height = height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = VIDEO_TIME_BASE
        self._encoder.framerate = fractions.Fraction(fps, 1)
        self._encoder.bit_rate = bitrate
        self._encoder.gop_size = 100_000  # keyframes only at the start and on request
        self._frames: list[av.VideoFrame] = [
            pattern_frame(width, height, i) for i in range(width // BLOCK)
        ]
        if grain:
            noise = random.Random(width * height)
            for frame in self._frames:
                add_grain(frame, noise)
        self.stamp = stamp
        self._lumas = [bytes(frame.planes[0]) for frame in self._frames] if stamp else []

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (wired to the publisher sender's PLI/FIR)."""
        self.force_keyframe = True

    def _stamped(self, pattern: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y_plane = frame.planes[0]
        columns = self.width // BLOCK
        row = stamp_row(self.width, y_plane.line_size, wall_ms() % (1 << columns))
        y_plane.update(row + self._lumas[pattern][len(row) :])
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        return frame

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """The next encoded frame, paced at ``fps``."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.frames / self.fps
        # Sleep even when late (sleep(0) yields): behind schedule on a busy machine, the sender
        # would otherwise encode and send frame after frame without ever giving the event loop
        # a turn, starving everything else in this process (timeouts included).
        await asyncio.sleep(max(0.0, due - now))
        index = self.frames
        self.frames += 1
        frame = self._frames[index % len(self._frames)]
        if self.stamp:
            frame = self._stamped(index % len(self._frames))
        frame.pts = index * 90000 // self.fps
        frame.time_base = VIDEO_TIME_BASE
        periodic = (
            self.keyframe_every is not None
            and time.monotonic() - self._last_keyframe >= self.keyframe_every
        )
        if self.force_keyframe or periodic:
            frame.pict_type = av.video.frame.PictureType.I
            self.force_keyframe = False
            self._last_keyframe = time.monotonic()
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        packets = self._encoder.encode(frame)
        assert len(packets) == 1, "realtime encoders emit one packet per frame"
        packet = packets[0]
        if packet.is_keyframe:
            self.keyframes += 1
        self.capture_times[frame.pts] = time.time()
        return packet


class ToneTrack(MediaStreamTrack):
    """An audio track yielding Opus packets of a 440 Hz tone, 20 ms each."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = 48000
        self._encoder.layout = "stereo"
        self._encoder.format = "s16"
        self._encoder.bit_rate = 64000
        self._encoder.time_base = AUDIO_TIME_BASE
        samples = [int(8000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(960)]
        self._pcm = b"".join(struct.pack("<hh", s, s) for s in samples)
        self._start: float | None = None
        self._count = 0
        self._pending: list[av.Packet] = []

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """The next 20 ms Opus packet, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        while not self._pending:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + self._count * 0.02
            await asyncio.sleep(max(0.0, due - now))  # yields even when late, as above
            frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
            frame.planes[0].update(self._pcm)
            frame.sample_rate = 48000
            frame.pts = self._count * 960
            frame.time_base = AUDIO_TIME_BASE
            self._count += 1
            self._pending.extend(self._encoder.encode(frame))
        return self._pending.pop(0)


def _preferences(kind: str, name: str) -> list[Any]:
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in codecs if c.name.lower() == name]
    return chosen + [c for c in codecs if c.name.lower() == "rtx"][:1]


class Publisher:
    """A WHIP client sending :class:`PatternTrack` (and optionally :class:`ToneTrack`)."""

    def __init__(self, codec: str = "vp8", *, audio: bool = True, **video: Any) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(IceConfig()))
        self.video = PatternTrack(codec, **video)
        self.audio = ToneTrack() if audio else None
        transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
        transceiver.setCodecPreferences(_preferences("video", codec))
        # The relay forwards viewers' picture-loss requests here: answer with a keyframe.
        redirect_keyframe_requests(transceiver.sender, self.video.request_keyframe)
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")

    async def start(self, signal: Signal) -> str:
        """Offer, let ``signal`` deliver it, apply the answer; returns the answer SDP."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await signal(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return answer

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """A WHEP client that decodes what it receives and checks it against the pattern."""

    def __init__(self, *, audio: bool = True, video_codec: str | None = None) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(IceConfig()))
        video = self.pc.addTransceiver("video", direction="recvonly")
        if video_codec is not None:
            video.setCodecPreferences(_preferences("video", video_codec))
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.frames = 0
        self.matching = 0
        self.bad = 0
        self.bars: set[int] = set()
        self.audio_frames = 0
        self.answered_at: float | None = None
        self.first_frame_at: float | None = None
        self.latencies: list[float] = []
        self.capture_times: dict[int, float] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Event()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        consume = self._consume_video if track.kind == "video" else self._consume_audio
        self._tasks.append(asyncio.ensure_future(consume(track)))

    async def _consume_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.frames += 1
                bar = matches_pattern(frame)
                if bar is None:
                    self.bad += 1
                else:
                    self.matching += 1
                    self.bars.add(bar)
                self._progress.set()
                # recv() does not suspend while decoded frames are queued: give the loop a
                # turn, or a backlog on a busy machine starves everything else in this process.
                await asyncio.sleep(0)
        except MediaStreamError:
            pass

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.audio_frames += 1
                await asyncio.sleep(0)  # as for video
        except MediaStreamError:
            pass

    async def start(self, signal: Signal) -> str:
        """Offer, let ``signal`` deliver it, apply the answer; returns the answer SDP."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await signal(self.pc.localDescription.sdp)
        self.answered_at = time.monotonic()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return answer

    async def wait_frames(self, count: int, timeout: float) -> None:
        """Wait until ``count`` frames matching the pattern have been decoded."""
        deadline = time.monotonic() + timeout
        while self.matching < count:
            self._progress.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.matching} matching frames of {count} "
                    f"({self.frames} decoded, {self.bad} not matching)"
                )
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                continue

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
