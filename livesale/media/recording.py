"""Recording every show as fragmented-MP4 HLS, from the encoded frames the relay forwards.

The relay hands each complete video frame and each Opus packet, with its RTP timestamp, to the
show's :class:`Recorder` (:class:`livesale.media.relay.Source`). H.264 and Opus are neither
decoded nor encoded:

* Timestamps come from the RTP clocks (90 kHz video, 48 kHz Opus), unwrapped, and are rebased
  to the recording's start. Audio and video are aligned by arrival: the first frame of each
  kind from a publisher is placed at the wall-clock time it arrived, the frames after it follow
  their RTP clock. (aiortc's receiver does not expose the RTP timestamp of the publisher's
  RTCP sender reports, which a lip-sync alignment would need.) Each track's timeline only
  moves forward: a frame that would step back is dropped.
* A segment is cut at a video keyframe once it holds :data:`MIN_SEGMENT` seconds; when one is
  due (:data:`TARGET_SEGMENT`) the recorder asks the publisher for a keyframe through the
  relay's rate-limited picture-loss requests. Every segment starts on a keyframe
  (``#EXT-X-INDEPENDENT-SEGMENTS``).
* The target duration is fixed for the life of a recording (RFC 8216 §6.2.1 forbids changing
  it in a live playlist); :meth:`Recorder.target_duration` tells the rule and what it costs.
* ``index.m3u8`` lists a sliding window, the newest :data:`LIVE_WINDOW` seconds (never less
  than three target durations, RFC 8216 §6.2.2), with ``#EXT-X-MEDIA-SEQUENCE`` and
  ``#EXT-X-DISCONTINUITY-SEQUENCE`` counting what left it; every segment stays on disk, and
  ``all.m3u8`` (not served) lists them all, for ``vod.m3u8`` at the end and for a restarted
  server that continues the recording.
* Complete segments are muxed (:mod:`livesale.media.fmp4`) and written in one thread shared by
  every show, never on the event loop; the live playlist is rewritten after each segment. At
  most :data:`MAX_PENDING` segments wait for the disk: past that a segment is dropped (with a
  discontinuity) rather than held in memory.
* Every segment carries ``#EXT-X-PROGRAM-DATE-TIME`` (RFC 8216 §4.3.2.6): the wall-clock time
  its first frame was received, as the timeline places it (the first frame of a publisher's
  period at its arrival, the frames after it on their RTP clock), so that players (hls.js'
  ``playingDate``) and tools can tell how far behind the live edge they are. The dates follow
  the ``#EXTINF`` durations to the millisecond; within a period they drift from the wall clock
  only as far as the publisher's RTP clock drifts from ours (tens of ppm).
* A host who reconnects (a new WHIP session) continues the same recording: the next segment
  carries ``#EXT-X-DISCONTINUITY`` and, as the new encoder's parameters may differ, an init
  segment of its own.
* HLS players take H.264 in fMP4 everywhere and VP8 almost nowhere, so a publisher that offers
  only VP8 has its video decoded and encoded again as H.264 for the recording alone
  (:mod:`livesale.media.transcode`, on a thread of the show's own; its viewers still get the
  VP8 as sent). A publisher with no video at all is not recorded, with one log line.
* A write that fails (``ENOSPC`` and any other ``OSError``) stops that show's recording with one
  log line; the show goes on.

Files, under ``<media dir>/<show id>/``: ``init-N.mp4``, ``seg-N.m4s``, ``index.m3u8`` (live,
a sliding window), ``all.m3u8`` (every segment so far) and, once the show has ended,
``vod.m3u8``. :func:`prune` deletes recordings older than
``--keep-recordings`` days.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from livesale.media.bitstream import NAL_PPS, NAL_SPS, annexb_nal_units, h264_dimensions
from livesale.media.fmp4 import AUDIO_CLOCK, VIDEO_CLOCK, MuxError, Sample, VideoParams, mux_segment
from livesale.media.transcode import Vp8ToH264

log = logging.getLogger("livesale.media")

#: Seconds of media a segment aims at; a keyframe is asked for once it is due.
TARGET_SEGMENT = 2.0
#: A keyframe earlier than this into a segment does not cut it (viewers' requests make some).
MIN_SEGMENT = 1.5
#: Segments muxed and waiting for the disk, at most; past that they are dropped, not held.
MAX_PENDING = 8
#: Bytes of video one segment may gather while no keyframe comes; past that video frames are
#: dropped until the next keyframe (memory stays bounded whatever the publisher does).
MAX_SEGMENT_BYTES = 32 * 1024 * 1024
#: The ``#EXT-X-TARGETDURATION`` floor (RFC 8216 §4.3.3.1: no segment may round above it).
MIN_TARGET_DURATION = 4
#: The target duration's ceiling, and the longest a recording's first segment may last.
MAX_TARGET_DURATION = 10
#: Seconds of the newest segments the live playlist lists (at least three target durations).
LIVE_WINDOW = 30.0

LIVE = "index.m3u8"
VOD = "vod.m3u8"
#: Every segment of the recording so far (the live playlist lists only the newest).
ALL = "all.m3u8"
#: The featured items' marks on the recording's timeline: ``[{"sku", "at_s"}]`` (``sku`` null
#: when the host featured nothing), read by ``GET /api/shows/{id}/replay``.
CHAPTERS = "chapters.json"
#: Every name the recorder writes; the HLS routes serve nothing else.
FILE_NAME = re.compile(r"(init-\d{1,6}\.mp4|seg-\d{1,9}\.m4s|index\.m3u8|vod\.m3u8)")
#: What a show id may look like in a path (``livesale.ids.new_id``: letters, digits, ``_``).
SHOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The tag that dates the segment after it (RFC 8216 §4.3.2.6).
DATE_TAG = "#EXT-X-PROGRAM-DATE-TIME:"
TARGET_TAG = "#EXT-X-TARGETDURATION:"


@dataclass(frozen=True)
class Segment:
    """One written media segment, as the playlist lists it."""

    name: str
    duration: float
    init: str
    discontinuity: bool
    #: Wall-clock time of its first frame (seconds since the epoch); ``None`` in a playlist
    #: written before the recorder dated its segments.
    date: float | None = None


def program_date_time(date: float) -> str:
    """``date`` as ``#EXT-X-PROGRAM-DATE-TIME`` gives it: ISO 8601, UTC, milliseconds."""
    moment = datetime.fromtimestamp(date, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def playlist(
    segments: list[Segment],
    *,
    ended: bool,
    vod: bool = False,
    target: int | None = None,
    window: float | None = None,
) -> str:
    """An HLS media playlist (RFC 8216 §4) of ``segments``.

    ``target``: the ``#EXT-X-TARGETDURATION`` (default: the least every segment allows, at
    least :data:`MIN_TARGET_DURATION`). ``window``: list only the newest segments that last
    that many seconds, and at least three target durations (a live sliding window: no
    ``#EXT-X-PLAYLIST-TYPE``); ``None``: every segment (``EVENT``, or ``VOD`` with ``vod``).
    """
    if target is None:
        target = max([MIN_TARGET_DURATION, *(math.ceil(s.duration) for s in segments)])
    first = 0
    if window is not None:
        # RFC 8216 §6.2.2: a segment leaves only while what stays lasts 3 target durations.
        kept, least = 0.0, max(window, 3.0 * target)
        first = len(segments)
        while first > 0 and kept < least:
            first -= 1
            kept += segments[first].duration
    left = sum(1 for s in segments[:first] if s.discontinuity)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    if left:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{left}")
    if window is None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{'VOD' if vod else 'EVENT'}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    init = None
    for segment in segments[first:]:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init != init:
            init = segment.init
            lines.append(f'#EXT-X-MAP:URI="{init}"')
        if segment.date is not None:
            lines.append(DATE_TAG + program_date_time(segment.date))
        lines.append(f"#EXTINF:{segment.duration:.3f},")
        lines.append(segment.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def read_playlist(text: str) -> list[Segment]:
    """The segments of a playlist :func:`playlist` wrote (to continue its recording)."""
    segments: list[Segment] = []
    init, duration, discontinuity = "", None, False
    date: float | None = None
    for line in text.splitlines():
        if line.startswith('#EXT-X-MAP:URI="'):
            init = line[len('#EXT-X-MAP:URI="') : -1]
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith(DATE_TAG):
            date = datetime.fromisoformat(line[len(DATE_TAG) :]).timestamp()
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].rstrip(","))
        elif line and not line.startswith("#"):
            if duration is None or not FILE_NAME.fullmatch(line) or not FILE_NAME.fullmatch(init):
                raise ValueError(f"not a playlist of this recorder: {line!r}")
            segments.append(Segment(line, duration, init, discontinuity, date))
            duration, discontinuity, date = None, False, None
    return segments


def read_target(text: str) -> int | None:
    """The ``#EXT-X-TARGETDURATION`` of a playlist, if it has one."""
    for line in text.splitlines():
        if line.startswith(TARGET_TAG):
            return int(line[len(TARGET_TAG) :])
    return None


def _number(name: str) -> int:
    """N of ``seg-N.m4s`` or ``init-N.mp4`` (not the 4 of their extensions)."""
    found = re.search(r"\d+", name)
    assert found is not None, name  # FILE_NAME matched it
    return int(found.group())


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "wb") as file:
            file.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@dataclass
class _Job:
    """One segment for the writer thread."""

    directory: Path
    video: VideoParams
    frames: list[Sample]
    sounds: list[Sample]
    sequence: int
    segment: Segment
    #: The init segment is new (the first segment of a publisher's period).
    new_init: bool
    #: The live playlist once this segment is written.
    playlist: str
    #: The list of every segment once this one is written (:data:`ALL`).
    everything: str


def _run_job(job: _Job) -> None:
    init, data = mux_segment(job.video, job.frames, job.sounds, job.sequence)
    job.directory.mkdir(parents=True, exist_ok=True)
    if job.new_init:
        _write(job.directory / job.segment.init, init)
    _write(job.directory / job.segment.name, data)
    _write(job.directory / ALL, job.everything.encode())
    _write(job.directory / LIVE, job.playlist.encode())


class _Timeline:
    """One track's RTP timestamps rebased to the recording's start and kept increasing."""

    def __init__(self, clock: int) -> None:
        self.clock = clock
        self.last: int | None = None
        self._rtp: int | None = None
        self._pts = 0
        self._floor = 0

    def new_period(self, floor: int = 0) -> None:
        """A new publisher: its first frame goes where it arrives, and at ``floor`` or later
        (where the previous segment ended)."""
        self._rtp = None
        self._floor = floor

    def place(self, rtp_timestamp: int, since_start: float) -> int | None:
        """The frame's pts, or ``None`` if it would not come after the previous one."""
        if self._rtp is None:
            pts = max(round(since_start * self.clock), self._floor)
            if self.last is not None:
                pts = max(pts, self.last + 1)
        else:
            delta = (rtp_timestamp - self._rtp + (1 << 31)) % (1 << 32) - (1 << 31)
            pts = self._pts + delta
        self._rtp = rtp_timestamp
        self._pts = pts
        if self.last is not None and pts <= self.last:
            return None
        self.last = pts
        return pts


@dataclass
class _Open:
    """The segment being gathered."""

    frames: list[Sample] = field(default_factory=list)
    sounds: list[Sample] = field(default_factory=list)
    size: int = 0
    asked: bool = False


class Recorder:
    """One show's recording; fed on the event loop by the relay, written by a thread.

    Every method returns at once and never raises into the relay.
    """

    def __init__(
        self,
        show_id: str,
        directory: Path,
        executor: concurrent.futures.Executor,
        *,
        live_window: float = LIVE_WINDOW,
    ) -> None:
        self.show_id = show_id
        self.directory = directory
        self._executor = executor
        self.live_window = live_window
        #: Every segment written so far (the live playlist lists the newest).
        self.segments: list[Segment] = []
        #: ``#EXT-X-TARGETDURATION``, fixed at the first segment (:meth:`target_duration`).
        self.target: int | None = None
        self._cut_short = False  # a segment was cut at the target: said once
        self.failed = False
        #: Featured items on the timeline (:data:`CHAPTERS`), read back on :meth:`resume`.
        self.marks: list[dict[str, Any]] = []
        self.finished = False
        self._recording = False  # the current publisher's video can be recorded
        #: A VP8 publisher's frames become H.264 here (for the recording only).
        self._transcoder: Vp8ToH264 | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # transcoders of earlier publishers
        self._request_keyframe: Callable[[], None] = lambda: None
        self._start: float | None = None
        #: Wall-clock time of the timeline's zero (``time.time()`` when ``_start`` was).
        self._epoch = 0.0
        self._video = _Timeline(VIDEO_CLOCK)
        self._audio = _Timeline(AUDIO_CLOCK)
        self._params: VideoParams | None = None
        self._period = 0
        self._init = ""
        self._new_init = False
        self._discontinuity = False
        self._open: _Open | None = None
        self._gated = True  # waiting for a keyframe to open a segment
        self._sequence = 0
        #: Where the last segment handed to the writer ends (90 kHz).
        self._end = 0
        self._pending: set[asyncio.Future[None]] = set()
        #: Seconds recorded before this process took the recording over (see :meth:`resume`).
        self._earlier = 0.0
        #: When the earlier recording's last segment ends, on the wall clock (dates go on after).
        self._earlier_end = 0.0

    def target_duration(self) -> int:
        """The recording's ``#EXT-X-TARGETDURATION``, fixed when its first segment is cut and
        for its whole life, restarts included (RFC 8216 §6.2.1: it never changes in a live
        playlist): that segment's duration rounded up, at least :data:`MIN_TARGET_DURATION`
        and at most :data:`MAX_TARGET_DURATION` seconds.

        A publisher that answers keyframe requests makes ~2 s segments, and the target is 4:
        room for a late keyframe without a cut, and a round unit for players' hold-back. One
        that ignores them (a fixed keyframe interval, as OBS can have) shows it in the first
        segment, and the target fits its interval, up to 10 s, rather than every segment
        being cut short. Past the target a segment is cut at the target anyway (never an
        ``#EXTINF`` above it): the frames up to the next keyframe cannot start a segment, so
        they are dropped, the HLS picture freezing that long (WebRTC viewers lose nothing),
        and the next segment follows a discontinuity, as its timestamps jump. The costs: a
        larger target makes players hold back further and reload less often; a publisher
        whose keyframes grow sparser later (a reconnect with another encoder) loses frames
        in every segment. The alternatives are worse: a target that grows breaks live players
        and a cut between keyframes makes a segment no player can start on.
        """
        if self.target is None:
            raise RuntimeError("the target duration is fixed at the first segment")
        return self.target

    def position(self) -> float:
        """Where the recording is now, in seconds of its own timeline (the clock its
        segments' timestamps are placed on): 0 before its first frame, after a restart the
        time already recorded."""
        if self._start is None:
            return self._earlier
        return max(0.0, time.monotonic() - self._start)

    def mark(self, sku: str | None) -> None:
        """The host featured ``sku`` (``None``: nothing) now: a chapter starts here."""
        if self.failed or self.finished:
            return
        self.marks.append({"sku": sku, "at_s": round(self.position(), 3)})
        data = json.dumps(self.marks).encode()
        future = self._executor.submit(_write_marks, self.directory, data)
        future.add_done_callback(_log_failure)

    def resume(self) -> None:
        """Continue a recording an earlier run of the server left (the show is still live):
        its segments stay listed, new files never reuse their names, time goes on after them.
        Reads one small file; call before the first frame."""
        try:
            self.marks = read_marks((self.directory / CHAPTERS).read_bytes())
        except (OSError, ValueError):
            self.marks = []
        # The list of every segment; a recording made before there was one lists them all in
        # its live playlist.
        for name in (ALL, LIVE):
            try:
                text = (self.directory / name).read_text()
                break
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._fail(f"cannot read the earlier playlist: {exc}")
                return
        else:
            return
        try:
            segments = read_playlist(text)
            target = read_target(text)
        except ValueError as exc:
            self._fail(str(exc))
            return
        if segments:
            self.target = target
            self.segments = segments
            self._sequence = max(_number(s.name) for s in segments)
            self._period = max(_number(s.init) for s in segments)
            self._earlier = sum(s.duration for s in segments)
            last = segments[-1]
            if last.date is not None:
                self._earlier_end = last.date + last.duration
            self._discontinuity = True

    # -- fed by the relay ------------------------------------------------------------------

    def new_source(self, codec: str | None, request_keyframe: Callable[[], None]) -> None:
        """A publisher (the first, or one reconnecting) starts sending ``codec`` video."""
        if self.failed or self.finished:
            return
        self._cut(None)
        stopping = self._stop_transcoding()
        if stopping is not None:
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
        self._request_keyframe = request_keyframe
        self._recording = codec in ("h264", "vp8")
        if codec == "vp8":
            # HLS has no VP8: the recording encodes it again as H.264 (livesale.media.transcode).
            self._transcoder = Vp8ToH264(self.show_id, self._h264, request_keyframe)
            self._request_keyframe = self._transcoder.keyframe
            log.info("show %s: VP8 video is recorded as H.264, encoded again", self.show_id)
        elif not self._recording:
            log.warning(
                "show %s: %s is not recorded (recording needs H.264 or VP8 video)",
                self.show_id,
                f"{codec.upper()} video" if codec else "audio alone",
            )
        self._video.new_period(self._end)
        self._audio.new_period()
        self._gated = True
        self._discontinuity = bool(self.segments)

    def video(self, data: bytes, rtp_timestamp: int, keyframe: bool) -> None:
        """One complete frame of the publisher's video: H.264 (Annex B; a keyframe carries
        its SPS and PPS), or VP8, which goes through the transcoder first."""
        if not self._recording or self.failed or self.finished:
            return
        if self._transcoder is not None:
            self._transcoder.push(data, rtp_timestamp, keyframe, time.monotonic())
            return
        self._h264(data, rtp_timestamp, keyframe, time.monotonic())

    def _stop_transcoding(self) -> asyncio.Task[None] | None:
        """Stop the VP8 publisher's transcoder, if any; the task that ends its thread."""
        if self._transcoder is None:
            return None
        transcoder, self._transcoder = self._transcoder, None
        return asyncio.get_running_loop().create_task(transcoder.aclose())

    def _h264(self, data: bytes, rtp_timestamp: int, keyframe: bool, now: float) -> None:
        """One H.264 frame that arrived at ``now`` (``time.monotonic``)."""
        if not self._recording or self.failed or self.finished:
            return
        if self._gated and not keyframe:
            return
        if self._start is None:
            self._start = now - self._earlier
            # Dates never step back, even when the clock did, or the earlier run was fed
            # faster than real time.
            self._epoch = max(time.time(), self._earlier_end) - self._earlier
        pts = self._video.place(rtp_timestamp, now - self._start)
        if pts is None:
            return
        if keyframe:
            params = _video_params(data)
            if params is None:
                keyframe = False  # no decoder could start on it
                if self._gated:
                    return
            elif params != self._params:
                # A new encoder, or a new resolution: the segments from here need an init
                # segment of their own, behind a discontinuity.
                self._cut(pts)
                self._params = params
                self._period += 1
                self._init = f"init-{self._period}.mp4"
                self._new_init = True
                self._discontinuity = self._discontinuity or bool(self.segments)
        current = self._open
        limit = (self.target or MAX_TARGET_DURATION) * VIDEO_CLOCK
        if not keyframe and current and current.frames and pts - current.frames[0].pts >= limit:
            # No keyframe by the target: cut there and wait for one (see target_duration).
            if not self._cut_short:
                self._cut_short = True
                log.warning(
                    "show %s: the publisher sends no keyframe within %d s: HLS segments are "
                    "cut there and the frames up to the next keyframe left out",
                    self.show_id,
                    limit // VIDEO_CLOCK,
                )
            self._cut(current.frames[0].pts + limit)
            self._gated = True
            self._discontinuity = True
            self._request_keyframe()
            return
        if keyframe and (
            current is None
            or not current.frames
            or pts - current.frames[0].pts >= MIN_SEGMENT * VIDEO_CLOCK
        ):
            self._cut(pts)
            current = self._open = _Open()
            self._gated = False
        assert current is not None
        if current.size + len(data) > MAX_SEGMENT_BYTES:
            self._gated = True  # no keyframe for far too long: wait for one
            self._request_keyframe()
            return
        if current.frames:
            current.frames[-1].duration = pts - current.frames[-1].pts
        current.frames.append(Sample(data, pts, 3000, keyframe))
        current.size += len(data)
        if not current.asked and pts - current.frames[0].pts >= (
            (TARGET_SEGMENT - 0.1) * VIDEO_CLOCK
        ):
            current.asked = True
            self._request_keyframe()

    def audio(self, data: bytes, rtp_timestamp: int) -> None:
        """One Opus packet."""
        current = self._open
        if current is None or not self._recording or self.failed or self.finished:
            return
        assert self._start is not None
        pts = self._audio.place(rtp_timestamp, time.monotonic() - self._start)
        if pts is None:
            return
        if current.sounds:
            current.sounds[-1].duration = pts - current.sounds[-1].pts
        current.sounds.append(Sample(data, pts, 960))

    # -- segments --------------------------------------------------------------------------

    def _cut(self, next_pts: int | None) -> None:
        """Hand the open segment to the writer; ``next_pts``: where the next one starts."""
        current, self._open = self._open, None
        if current is None or not current.frames or self._params is None:
            return
        first = current.frames[0].pts
        if next_pts is not None:
            current.frames[-1].duration = next_pts - current.frames[-1].pts
        end = current.frames[-1].pts + current.frames[-1].duration
        self._end = end
        if len(self._pending) >= MAX_PENDING:
            log.warning("show %s: the disk is behind, a recorded segment dropped", self.show_id)
            self._discontinuity = True
            return
        if self.target is None:
            duration = math.ceil((end - first) / VIDEO_CLOCK - 0.001)
            self.target = min(MAX_TARGET_DURATION, max(MIN_TARGET_DURATION, duration))
        self._sequence += 1
        segment = Segment(
            f"seg-{self._sequence}.m4s",
            (end - first) / VIDEO_CLOCK,
            self._init,
            self._discontinuity,
            round(self._epoch + first / VIDEO_CLOCK, 3),
        )
        self._discontinuity = False
        self.segments.append(segment)
        job = _Job(
            self.directory,
            self._params,
            current.frames,
            current.sounds,
            self._sequence,
            segment,
            self._new_init,
            playlist(self.segments, ended=False, target=self.target, window=self.live_window),
            playlist(self.segments, ended=False, target=self.target),
        )
        self._new_init = False
        self._submit(job)

    def _submit(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, _run_job, job)
        self._pending.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if future.cancelled() or self.failed:
            return
        exc = future.exception()
        if exc is None:
            return
        if isinstance(exc, OSError):
            self._fail(f"{exc.strerror or exc} ({exc.filename or self.directory})")
        elif isinstance(exc, MuxError):
            self._fail(str(exc))
        else:
            log.error("show %s: writing a segment failed", self.show_id, exc_info=exc)
            self._fail(type(exc).__name__)

    def _fail(self, why: str) -> None:
        self.failed = True
        self._open = None
        log.error("show %s: recording stopped, the show goes on: %s", self.show_id, why)

    async def finish(self, *, ended: bool) -> None:
        """Write what is gathered and wait for the writer; when the show has ``ended``, write
        the VOD playlist (and close the live one with ``#EXT-X-ENDLIST``)."""
        if self.finished:
            return
        stopping = self._stop_transcoding()
        await asyncio.gather(*self._stopping, *([stopping] if stopping else []))
        if not self.failed:
            self._cut(None)
        self.finished = True
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self.failed or not self.segments or not ended:
            return
        loop = asyncio.get_running_loop()
        live = playlist(self.segments, ended=True, target=self.target, window=self.live_window)
        vod = playlist(self.segments, ended=True, vod=True)
        try:
            await loop.run_in_executor(self._executor, _write_end, self.directory, live, vod)
        except OSError as exc:
            self._fail(f"{exc.strerror or exc} ({exc.filename or self.directory})")


def read_marks(data: bytes) -> list[dict[str, Any]]:
    """The marks of :data:`CHAPTERS`; ``ValueError`` for anything else."""
    marks = json.loads(data)
    if not isinstance(marks, list) or not all(
        isinstance(m, dict)
        and isinstance(m.get("at_s"), int | float)
        and (m.get("sku") is None or isinstance(m.get("sku"), str))
        for m in marks
    ):
        raise ValueError(f"{CHAPTERS} is not a list of marks")
    return marks


def _write_marks(directory: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / CHAPTERS, data)


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if future.exception() is not None:
        log.warning("chapter marks not written: %s", future.exception())


def _write_end(directory: Path, live: str, vod: str) -> None:
    _write(directory / LIVE, live.encode())
    _write(directory / VOD, vod.encode())


def _video_params(keyframe: bytes) -> VideoParams | None:
    sps = pps = None
    for unit in annexb_nal_units(keyframe):
        if unit and unit[0] & 0x1F == NAL_SPS:
            sps = unit
        elif unit and unit[0] & 0x1F == NAL_PPS:
            pps = unit
    if sps is None or pps is None:
        return None
    try:
        width, height = h264_dimensions(sps)
    except ValueError as exc:
        log.warning("an H.264 keyframe's SPS cannot be read (%s): not recorded", exc)
        return None
    return VideoParams(width, height, b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps)


class Recordings:
    """Every show's :class:`Recorder` in this process, their writer thread and the pruning.

    :meth:`aclose` writes what every recorder has gathered and stops the thread.
    """

    def __init__(
        self, directory: Path, *, keep_days: int = 30, live_window: float = LIVE_WINDOW
    ) -> None:
        self.directory = directory
        self.keep_days = keep_days
        self.live_window = live_window
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="livesale-recorder"
        )
        self._recorders: dict[str, Recorder] = {}
        self._pruner: asyncio.Task[None] | None = None

    def recorder(self, show_id: str) -> Recorder | None:
        """The recorder of ``show_id``, made on first use; ``None`` for an id that cannot be a
        directory name, or a show whose recording has finished."""
        recorder = self._recorders.get(show_id)
        if recorder is None:
            if not SHOW_ID.fullmatch(show_id):
                return None
            recorder = Recorder(
                show_id, self.directory / show_id, self._executor, live_window=self.live_window
            )
            recorder.resume()
            self._recorders[show_id] = recorder
        return None if recorder.finished else recorder

    def featured(self, show_id: str, sku: str | None) -> None:
        """The host featured ``sku`` (``None``: nothing): a chapter mark in the show's
        recording, if this process records it."""
        recorder = self._recorders.get(show_id)
        if recorder is not None:
            recorder.mark(sku)

    async def ended(self, show_id: str) -> None:
        """The show has ended: write its last segment and its VOD playlist."""
        recorder = self._recorders.get(show_id)
        if recorder is not None:
            await recorder.finish(ended=True)

    async def start(self) -> None:
        """Prune old recordings now and then once a day."""
        self._pruner = asyncio.get_running_loop().create_task(self._prune_daily())

    async def _prune_daily(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.keep_days > 0:
                try:
                    removed = await loop.run_in_executor(
                        self._executor, prune, self.directory, self.keep_days * 86400.0
                    )
                except OSError as exc:
                    log.warning("pruning recordings failed: %s", exc)
                else:
                    if removed:
                        log.info(
                            "deleted %d recordings older than %d days", removed, self.keep_days
                        )
            await asyncio.sleep(86400)

    async def aclose(self) -> None:
        """Write every recording's gathered media (no ``ENDLIST``: the shows go on) and stop."""
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
        for recorder in list(self._recorders.values()):
            await recorder.finish(ended=False)
        self._executor.shutdown(wait=True)


def prune(directory: Path, max_age: float, now: float | None = None) -> int:
    """Delete every recording under ``directory`` whose newest file is older than ``max_age``
    seconds; how many were deleted."""
    if not directory.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for show in directory.iterdir():
        if not show.is_dir() or show.is_symlink() or not SHOW_ID.fullmatch(show.name):
            continue
        newest = max((f.stat().st_mtime for f in show.iterdir()), default=show.stat().st_mtime)
        if now - newest > max_age:
            shutil.rmtree(show)
            removed += 1
    return removed
