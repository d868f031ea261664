"""The pass-through relay: the publisher's encoded frames go to every viewer as they are.

aiortc's ``RTCRtpSender`` accepts ``av.Packet`` objects from ``track.recv()`` and only packetizes
them (``encoder.pack()``); nothing is decoded and nothing is encoded. One show is a
:class:`Broadcast`:

* a :class:`Source` per publisher, fed by the assemblers of :mod:`livesale.media.jitter` that sit
  where the publisher's receivers keep their jitter buffers;
* one :class:`Channel` per media kind, which places each frame on a timeline that stays
  continuous when the publisher reconnects, packetises it once (:mod:`livesale.media.packetizer`)
  and offers the result to every viewer;
* a :class:`RelayTrack` per viewer and kind: once the viewer's sender has started it writes each
  frame straight to the viewer (:class:`livesale.media._aiortc.sender.ViewerStream`), inside the
  fan-out; before that, frames wait in a bounded queue. It starts on a keyframe (a viewer's
  first video frame is always one), and a viewer that falls behind (its queue overflows, or its
  socket is backed up) is flushed and waits for the next keyframe (dropping single frames would
  corrupt VP8, whose picture IDs the sender renumbers);
* a :class:`KeyframeRequester` that turns viewers' PLI/FIR, joins and losses into picture-loss
  requests to the publisher, at most one per ``min_interval``, later ones coalesced;
* when the show is recorded, its :class:`~livesale.media.recording.Recorder`, handed the same
  frames with their publisher RTP timestamps (it asks for keyframes through the same
  requester when a segment is due).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpCodecCapability
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from livesale.media._aiortc import install_assembler, send_picture_loss
from livesale.media.bitstream import KeyframeDetector
from livesale.media.jitter import AudioAssembler, VideoAssembler
from livesale.media.metrics import MediaStats
from livesale.media.packetizer import Packetizer, RtpFrame
from livesale.media.recording import Recorder

log = logging.getLogger("livesale.media")

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
#: About two seconds of video or audio; a viewer further behind is flushed and re-synchronised.
VIDEO_QUEUE = 60
AUDIO_QUEUE = 100
OPUS = RTCRtpCodecCapability(mimeType="audio/opus", clockRate=AUDIO_CLOCK, channels=2)


class RelayTrack(MediaStreamTrack):
    """One viewer's track of one kind: the publisher's frames (``RtpFrame``), in order.

    Once its sender has started, the track has a *sink* (:meth:`attach`), the viewer's
    :class:`livesale.media._aiortc.sender.ViewerStream`, and each frame is written to it as it
    is offered, inside the channel's fan-out. Before that (and for :meth:`recv`) frames wait in
    a bounded queue.
    """

    def __init__(
        self,
        kind: str,
        stats: MediaStats,
        request_keyframe: Callable[[], None],
        *,
        max_queue: int | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._video = kind == "video"
        self._stats = stats
        self._request_keyframe = request_keyframe
        self._max_queue = max_queue or (VIDEO_QUEUE if self._video else AUDIO_QUEUE)
        self._queue: deque[RtpFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Video waits for a keyframe before it forwards anything.
        self._gated = self._video
        self._started = False
        self._sink: Callable[[RtpFrame], bool] | None = None
        self.on_stop: Callable[[RelayTrack], None] | None = None

    def offer(self, frame: RtpFrame) -> None:
        """Send ``frame`` to this viewer, or queue it; never blocks, never raises."""
        keyframe = frame.keyframe
        if self._gated:
            if not keyframe:
                return
            self._gated = False
        sink = self._sink
        if sink is not None:
            try:
                sent = sink(frame)
            except ConnectionError:
                self.stop()  # the viewer's transport has closed
                return
            except Exception:
                log.exception("sending a frame to a viewer failed")
                self.stop()
                return
            if sent:
                self._forwarded(frame)
            else:
                self._fell_behind(keyframe)
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            queue.clear()
            if self._fell_behind(keyframe):
                return
        queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fell_behind(self, keyframe: bool) -> bool:
        """The viewer could not take a frame: what was waiting is dropped, and video waits for
        the next keyframe (never skip single frames: the decoder could not tell what it missed).
        ``True`` when the frame at hand must be dropped too."""
        self._stats.viewer_resyncs += 1
        if self._video and not keyframe:
            self._gated = True
            self._request_keyframe()
            return True
        return False

    def _forwarded(self, frame: RtpFrame) -> None:
        stats = self._stats
        if self._video:
            stats.video_frames_forwarded += 1
        else:
            stats.audio_frames_forwarded += 1
        stats.bytes_forwarded += frame.size

    def regate(self) -> None:
        """Forward nothing more until the next keyframe (after a loss or a new publisher)."""
        if self._video:
            self._gated = True

    def _starting(self) -> None:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            # The sender has started: the viewer is connected and needs a keyframe now.
            self._started = True
            if self._video:
                self._request_keyframe()

    async def attach(self, sink: Callable[[RtpFrame], bool]) -> None:
        """Write every frame to ``sink`` until the track stops: first those queued, then each
        one as it is offered. ``sink(frame)`` returns ``False`` when the viewer cannot take it
        (backed up) and raises ``ConnectionError`` once the viewer is gone."""
        self._starting()
        queue = self._queue
        while queue:
            frame = queue.popleft()
            if sink(frame):
                self._forwarded(frame)
            else:
                queue.clear()
                self._fell_behind(False)
        self._sink = sink
        try:
            while self.readyState == "live":
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        finally:
            self._sink = None

    async def recv(self) -> RtpFrame:  # type: ignore[override]
        """The next encoded frame; raises ``MediaStreamError`` once the track has stopped."""
        self._starting()
        queue = self._queue
        while not queue:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            if self.readyState != "live":
                raise MediaStreamError
        frame = queue.popleft()
        self._forwarded(frame)
        return frame

    def stop(self) -> None:
        """End the track: its sender stops and the channel forgets it."""
        if self.readyState == "ended":
            return
        super().stop()
        self._sink = None
        self._queue.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_stop is not None:
            self.on_stop(self)


class Channel:
    """The frames of one media kind of a show, fanned out to every viewer's :class:`RelayTrack`.

    Each frame is packetised once and the payloads are shared by all viewers. The
    timestamps continue across publishers: the first frame of a new source is
    placed after the last frame of the previous one by the wall-clock time in between, so
    viewers see a pause, not a jump, and need no renegotiation.
    """

    def __init__(self, kind: str, clock_rate: int, codec: Any | None = None) -> None:
        self.kind = kind
        self.clock_rate = clock_rate
        self.tracks: list[RelayTrack] = []
        self._packetizer = Packetizer(codec) if codec is not None else None
        self._last_rtp: int | None = None
        self._unwrapped = 0
        self._offset = 0
        self._last_pts: int | None = None
        self._last_wall = 0.0

    def add(self, track: RelayTrack) -> None:
        """Start offering frames to ``track``; it forgets itself when it stops."""
        self.tracks.append(track)
        track.on_stop = self.remove

    def remove(self, track: RelayTrack) -> None:
        """Stop offering frames to ``track``."""
        if track in self.tracks:
            self.tracks.remove(track)

    def set_codec(self, codec: Any) -> None:
        """Packetise frames as ``codec`` (an ``RTCRtpCodecCapability``) from now on."""
        self._packetizer = Packetizer(codec)

    def new_source(self) -> None:
        """The next frame comes from another publisher: restart the RTP unwrapping."""
        self._last_rtp = None
        for track in self.tracks:
            track.regate()

    def regate(self) -> None:
        """Every viewer waits for the next keyframe."""
        for track in self.tracks:
            track.regate()

    def push(self, data: bytes, rtp_timestamp: int, keyframe: bool) -> None:
        """Offer one encoded frame (with its publisher RTP timestamp) to every viewer."""
        now = time.monotonic()
        if self._last_rtp is None:
            if self._last_pts is None:
                self._offset = 0
            else:
                gap = max(1, round((now - self._last_wall) * self.clock_rate))
                self._offset = self._last_pts + gap
            self._unwrapped = 0
        else:
            # Signed 32-bit difference: handles wrap-around and small steps back alike.
            delta = (rtp_timestamp - self._last_rtp + (1 << 31)) % (1 << 32) - (1 << 31)
            self._unwrapped += delta
        self._last_rtp = rtp_timestamp
        pts = self._unwrapped + self._offset
        if self._last_pts is None or pts > self._last_pts:
            self._last_pts = pts
        self._last_wall = now
        if not self.tracks or self._packetizer is None:
            return
        frame = self._packetizer.packetize(data, pts, keyframe)
        for track in tuple(self.tracks):  # a viewer whose transport closed leaves the list
            track.offer(frame)


class KeyframeRequester:
    """Asks the publisher for a keyframe at most once per ``min_interval`` seconds.

    A request inside the interval is not lost: one request is sent when the interval ends,
    however many arrived meanwhile (coalescing).
    """

    def __init__(
        self, send: Callable[[], bool], stats: MediaStats, *, min_interval: float = 0.4
    ) -> None:
        self._send = send
        self._stats = stats
        self.min_interval = min_interval
        self._last = -min_interval
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def request(self) -> None:
        """Ask for a keyframe now, or once the current interval has passed."""
        if self._closed or self._timer is not None:
            return
        now = time.monotonic()
        wait = self._last + self.min_interval - now
        if wait <= 0:
            self._fire()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._send():
            self._last = time.monotonic()
            self._stats.keyframe_requests += 1

    def close(self) -> None:
        """Cancel a pending request; later requests are ignored."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Source:
    """One publisher's media entering a :class:`Broadcast`."""

    def __init__(self, broadcast: Broadcast, video_capability: Any | None) -> None:
        self.broadcast = broadcast
        #: The ``RTCRtpCodecCapability`` the publisher sends (``None``: audio only).
        self.video_capability = video_capability
        name = video_capability.mimeType.split("/")[1] if video_capability is not None else "none"
        self.detector = KeyframeDetector(name)
        self.video_assembler = VideoAssembler(self._on_video, self._on_loss)
        self.audio_assembler = AudioAssembler(self._on_audio)
        self.video_receiver: RTCRtpReceiver | None = None
        self.video_ssrc: int | None = None
        self.last_media = time.monotonic()
        self.frames = 0

    def attach(self, video: RTCRtpReceiver | None, audio: RTCRtpReceiver | None) -> None:
        """Install the assemblers on the publisher's receivers (before they start)."""
        if video is not None:
            install_assembler(video, self.video_assembler)
            self.video_receiver = video
        if audio is not None:
            install_assembler(audio, self.audio_assembler)

    def _on_video(self, data: bytes, rtp_timestamp: int, ssrc: int) -> None:
        self.video_ssrc = ssrc
        self.last_media = time.monotonic()
        broadcast = self.broadcast
        if broadcast.source is not self:
            return
        self.frames += 1
        data, keyframe = self.detector.inspect(data)
        if broadcast.keyframe_wanted and not keyframe:
            # A request made before the publisher's SSRC was known, or the assembler started
            # after the publisher's first keyframe: ask now that it can be addressed.
            broadcast.keyframes.request()
        elif keyframe:
            broadcast.keyframe_wanted = False
        if broadcast.paused:
            broadcast.set_paused(False)
        broadcast.video.push(data, rtp_timestamp, keyframe)
        recorder = broadcast.recorder
        if recorder is not None:
            try:
                recorder.video(data, rtp_timestamp, keyframe)
            except Exception:
                broadcast.recording_failed(recorder)

    def _on_audio(self, data: bytes, rtp_timestamp: int, ssrc: int) -> None:
        self.last_media = time.monotonic()
        broadcast = self.broadcast
        if broadcast.source is not self:
            return
        broadcast.audio.push(data, rtp_timestamp, True)
        recorder = broadcast.recorder
        if recorder is not None:
            try:
                recorder.audio(data, rtp_timestamp)
            except Exception:
                broadcast.recording_failed(recorder)

    def _on_loss(self) -> None:
        broadcast = self.broadcast
        broadcast.stats.publisher_losses += 1
        if broadcast.source is self:
            broadcast.video.regate()
            broadcast.keyframes.request()


class Broadcast:
    """One show's relay: its current publisher (if any), its channels and keyframe requests."""

    def __init__(
        self,
        show_id: str,
        stats: MediaStats,
        on_paused: Callable[[str, bool], None],
        *,
        keyframe_interval: float = 0.4,
    ) -> None:
        self.show_id = show_id
        self.stats = stats
        self.video = Channel("video", VIDEO_CLOCK)
        self.audio = Channel("audio", AUDIO_CLOCK, OPUS)
        self.source: Source | None = None
        #: The video codec capability every viewer is pinned to, once a publisher has sent one.
        self.codec: Any | None = None
        self.paused = False
        #: A keyframe was asked for and has not arrived yet.
        self.keyframe_wanted = True
        self._on_paused = on_paused
        self.keyframes = KeyframeRequester(
            self._send_picture_loss, stats, min_interval=keyframe_interval
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: The show's recording, when it is recorded (it outlives this relay: a host who
        #: comes back after every session has gone continues it).
        self.recorder: Recorder | None = None
        #: Fed by a pull from the node holding the publisher (``MediaHub.pull``): that node
        #: records the show and announces its pauses, not this one.
        self.pulled = False

    def recording_failed(self, recorder: Recorder) -> None:
        """A bug in the recorder: stop recording this show, never the show itself."""
        log.exception("show %s: recording stopped, the show goes on", self.show_id)
        recorder.failed = True
        self.recorder = None

    def set_source(self, source: Source) -> None:
        """Make ``source`` the publisher every viewer receives; viewers resync on its keyframe."""
        self.source = source
        self.keyframe_wanted = True
        if source.video_capability is not None:
            self.codec = source.video_capability
            self.video.set_codec(source.video_capability)
        self.video.new_source()
        self.audio.new_source()
        if self.recorder is not None:
            codec = source.video_capability
            name = str(codec.mimeType).split("/")[1].lower() if codec is not None else None
            self.recorder.new_source(name, self.keyframes.request)

    def clear_source(self, source: Source) -> None:
        """``source`` has gone: the show is paused until a publisher returns."""
        if self.source is source:
            self.source = None
            self.set_paused(True)

    def set_paused(self, paused: bool) -> None:
        """Record (and announce once) that video stopped or resumed."""
        if paused != self.paused:
            self.paused = paused
            log.info("show %s %s", self.show_id, "paused" if paused else "resumed")
            self._on_paused(self.show_id, paused)

    def _send_picture_loss(self) -> bool:
        self.keyframe_wanted = True
        source = self.source
        if source is None or source.video_receiver is None or source.video_ssrc is None:
            return False
        task = asyncio.get_running_loop().create_task(
            send_picture_loss(source.video_receiver, source.video_ssrc)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def viewer_keyframe_request(self) -> None:
        """A viewer's PLI/FIR: forward it to the publisher (rate-limited)."""
        self.stats.viewer_keyframe_requests += 1
        self.keyframes.request()

    async def aclose(self) -> None:
        """Stop requesting keyframes and wait for requests in flight."""
        self.keyframes.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
