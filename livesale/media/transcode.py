"""VP8 to H.264 for the recording of a publisher that offers only VP8.

HLS carries H.264 (and HEVC), not VP8, and every publisher the project knows of offers H.264
(browsers and OBS), so the relay never transcodes what it sends viewers. A publisher that offers
only VP8 still gets a replay: its frames are decoded (FFmpeg's VP8 decoder) and encoded again
with libx264 for the recording alone, on a thread of the show's own, so the event loop and the
viewers never wait for it. The cost is one decode and one fast encode per frame of that show
(``scripts/bench_relay.py --record --codec vp8`` gives it), and nothing for an H.264 publisher.

The recorder asks this encoder, not the publisher, for a keyframe where it cuts a segment.
When the thread falls behind by :data:`MAX_PENDING` frames, frames are dropped until the
publisher's next keyframe (which is asked for), so memory stays bounded whatever the CPU does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
from collections.abc import Callable

import av

log = logging.getLogger("livesale.media")

#: VP8 frames waiting for the thread at most; past it the recording skips to a keyframe.
MAX_PENDING = 30
#: libx264 as fast as it goes, with no frame held back (no B-frames, no look-ahead).
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1", "crf": "26"}

#: What the transcoder hands back: an H.264 frame (Annex B), its RTP timestamp, whether it is
#: a keyframe, and when its VP8 frame arrived (``time.monotonic``).
Output = Callable[[bytes, int, bool, float], None]


class Vp8ToH264:
    """One show's transcoder; make it on the event loop, feed it from there, and
    :meth:`aclose` it at the end. ``output`` is called on the event loop, in order."""

    def __init__(self, show_id: str, output: Output, request_keyframe: Callable[[], None]):
        self.show_id = show_id
        self._output = output
        self._request_keyframe = request_keyframe
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="livesale-transcode"
        )
        self._decoder = av.CodecContext.create("vp8", "r")
        self._encoder: av.VideoCodecContext | None = None
        self._frames = 0
        self._pending = 0
        self._gated = True
        self._idr = False
        self._behind = False
        self._closed = False

    def keyframe(self) -> None:
        """The recorder wants a keyframe: the next encoded frame is one."""
        self._idr = True

    def push(self, data: bytes, rtp_timestamp: int, keyframe: bool, arrived: float) -> None:
        """One complete VP8 frame of the publisher."""
        if self._closed or (self._gated and not keyframe):
            return
        if self._pending >= MAX_PENDING:
            if not self._behind:
                log.warning(
                    "show %s: the recording's VP8 to H.264 encoding falls behind; skipping to"
                    " the next keyframe",
                    self.show_id,
                )
            self._behind = True
            self._gated = True
            self._request_keyframe()
            return
        self._gated = False
        self._pending += 1
        self._executor.submit(self._work, data, rtp_timestamp, arrived)

    def _work(self, data: bytes, rtp_timestamp: int, arrived: float) -> None:
        """On the thread: decode, encode, hand the H.264 frames to the loop."""
        out: list[tuple[bytes, int, bool, float]] = []
        broken = False
        try:
            for frame in self._decoder.decode(av.Packet(data)):
                for data_out, key in self._encode(frame):
                    out.append((data_out, rtp_timestamp, key, arrived))
        except (av.FFmpegError, ValueError) as exc:
            log.debug("show %s: VP8 frame not decoded: %s", self.show_id, exc)
            broken = True
        self._loop.call_soon_threadsafe(self._deliver, out, broken)

    def _encode(self, frame: av.VideoFrame) -> list[tuple[bytes, bool]]:
        encoder = self._encoder
        if encoder is None or (encoder.width, encoder.height) != (frame.width, frame.height):
            # The first frame, or a new size: an encoder of that size (and an IDR).
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height = frame.width, frame.height
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = fractions.Fraction(1, 30)
            encoder.framerate = fractions.Fraction(30, 1)
            encoder.gop_size = 100_000  # keyframes where the recorder cuts, not by count
            encoder.options = X264_OPTIONS
            self._encoder = encoder
            self._idr = True
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pts = self._frames
        self._frames += 1
        wanted = self._idr
        self._idr = False
        frame.pict_type = (
            av.video.frame.PictureType.I if wanted else av.video.frame.PictureType.NONE
        )
        return [(bytes(packet), bool(packet.is_keyframe)) for packet in encoder.encode(frame)]

    def _deliver(self, out: list[tuple[bytes, int, bool, float]], broken: bool) -> None:
        self._pending -= 1
        if self._closed:
            return
        if broken:
            # A frame the decoder could not use (a loss): start again at a keyframe.
            self._gated = True
            self._request_keyframe()
            return
        if not self._pending:
            self._behind = False
        for data, rtp_timestamp, keyframe, arrived in out:
            self._output(data, rtp_timestamp, keyframe, arrived)

    async def aclose(self) -> None:
        """Stop: frames still queued are dropped, the thread ends."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self._encoder = None
