"""Recording over a real server: an aiortc publisher's H.264 and Opus become HLS that ffprobe
reads over HTTP, live during the show and as VOD after its end."""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import websockets

from livesale.cli import main
from livesale.config import Settings, in_ci
from livesale.media import recording
from livesale.media.hls import chapters
from livesale.media.recording import FILE_NAME, Recorder, Recordings, playlist, prune
from tests.conftest import LiveServer
from tests.media.conftest import ROOT
from tests.media.peers import Publisher, ToneTrack, pattern_frame

# The server of the relay's tests (127.0.0.1 its only ICE candidate) records into tmp_path.
from tests.media.test_routes import LiveShow, make_show, settings, signal

__all__ = ["settings"]

#: Seconds the publisher sends before the show ends.
PUBLISHED = 8.0
SEGMENT = 2.0


def ffprobe_path() -> str:
    found = shutil.which("ffprobe")
    if found is None:
        if in_ci():
            pytest.fail("ffprobe is missing (scripts/test installs Debian's ffmpeg as root)")
        pytest.skip("ffprobe is missing: install Debian's ffmpeg (scripts/test does as root)")
    return found


async def ffprobe(url: str, *options: str) -> dict[str, Any]:
    """ffprobe's streams and packets of ``url``, as JSON."""
    process = await asyncio.create_subprocess_exec(
        ffprobe_path(),
        *options,
        "-v",
        "error",
        "-show_streams",
        "-show_packets",
        "-of",
        "json",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def dates(text: str) -> list[tuple[float, float]]:
    """``(date, duration)`` of every segment of a playlist: each must be dated."""
    found: list[tuple[float, float]] = []
    date: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = datetime.fromisoformat(line.split(":", 1)[1]).timestamp()
        elif line.startswith("#EXTINF:"):
            assert date is not None, f"a segment without #EXT-X-PROGRAM-DATE-TIME:\n{text}"
            found.append((date, float(line[len("#EXTINF:") :].rstrip(","))))
            date = None
    return found


def check_dates(text: str) -> list[tuple[float, float]]:
    """Every segment is dated, and each date is the one before plus its ``#EXTINF`` (within a
    few milliseconds of rounding; later, never earlier, across a discontinuity)."""
    found = dates(text)
    assert found, text
    for (date, duration), (after, _) in zip(found, found[1:], strict=False):
        assert after >= date + duration - 0.002, (date, duration, after)
    sections = text.split("#EXT-X-DISCONTINUITY")
    for section in sections:
        within = dates(section)
        for (date, duration), (after, _) in zip(within, within[1:], strict=False):
            assert after == pytest.approx(date + duration, abs=0.002), (date, duration, after)
    return found


def check_media(probe: dict[str, Any], published: float | None) -> None:
    """H.264 video and Opus audio; video pts increasing without a gap longer than a segment;
    when ``published`` is given, the duration within 25 % of it."""
    codecs = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
    assert codecs.get("video") == "h264", codecs
    assert codecs.get("audio") in ("opus", "aac"), codecs
    video = [p for p in probe["packets"] if p["codec_type"] == "video"]
    audio = [p for p in probe["packets"] if p["codec_type"] == "audio"]
    assert len(video) > 30 and len(audio) > 50, (len(video), len(audio))
    times = [float(p["pts_time"]) for p in video]
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(step > 0 for step in steps), "video pts must increase"
    assert max(steps) <= SEGMENT, f"a {max(steps):.2f} s gap between video frames"
    assert video[0]["flags"].startswith("K"), "the recording starts on a keyframe"
    if published is not None:
        duration = times[-1] - times[0]
        assert abs(duration - published) <= 0.25 * published, (duration, published)


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_a_show_is_recorded_as_hls_live_and_vod(
    loopback_ice: None, server: LiveServer, encoder_calls: list[str]
) -> None:
    """An H.264 publisher's show is HLS while live (ffprobe reads index.m3u8) and after its end
    (vod.m3u8): H.264 and Opus as sent, nothing transcoded, timing kept."""
    show = make_show(server)
    publisher = Publisher("h264")
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        missing = await client.get(f"/hls/{show.id}/vod.m3u8")
        assert missing.status_code == 404
        before = time.time()
        answer = await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
        assert "H264/90000" in answer
        started = time.monotonic()
        while publisher.video.frames == 0 and time.monotonic() - started < 60:
            await asyncio.sleep(0.1)
        first_frame = time.monotonic()
        # Live: once a few segments are written, the live playlist plays.
        await asyncio.sleep(PUBLISHED / 2 + SEGMENT)
        live = await client.get(f"/hls/{show.id}/index.m3u8")
        assert live.status_code == 200, live.text
        assert "#EXT-X-ENDLIST" not in live.text
        # Dated on the wall clock: the first frame came after the publisher started.
        first_date = check_dates(live.text)[0][0]
        assert before <= first_date <= time.time(), (before, first_date)
        # A live playlist has no end: read it from its first segment, three seconds of it.
        live_probe = await ffprobe(
            f"{server.url}/hls/{show.id}/index.m3u8",
            "-live_start_index",
            "0",
            "-read_intervals",
            "%+3",
        )
        check_media(live_probe, None)
        await asyncio.sleep(max(0.0, PUBLISHED - (time.monotonic() - first_frame)))
        published = time.monotonic() - first_frame
        ended = await client.post(f"/api/shows/{show.id}/end", headers=server.merchant)
        assert ended.status_code == 200, ended.text
        await publisher.close()

        vod = await client.get(f"/hls/{show.id}/vod.m3u8")
        assert vod.status_code == 200, vod.text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod.text and "#EXT-X-ENDLIST" in vod.text
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in vod.text and "#EXT-X-MAP:" in vod.text
        check_media(await ffprobe(f"{server.url}/hls/{show.id}/vod.m3u8"), published)
        assert check_dates(vod.text)[0][0] == first_date
        final = await client.get(f"/hls/{show.id}/index.m3u8")
        assert "#EXT-X-ENDLIST" in final.text
    assert encoder_calls == []


async def feature(server: LiveServer, show: LiveShow, sku: str | None) -> None:
    """The host features ``sku`` (``None``: nothing) over the room socket, as the studio does."""
    base = server.url.replace("http://", "ws://")
    async with websockets.connect(f"{base}/ws/shows/{show.id}?token={show.host_token}") as ws:
        await ws.recv()  # the snapshot
        await ws.send(json.dumps({"type": "feature", "sku": sku} if sku else {"type": "unfeature"}))
        while json.loads(await ws.recv())["type"] != "featured":
            pass


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_the_replay_has_a_chapter_per_featured_product(
    loopback_ice: None, server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host features A, then B, then nothing; after the end ``GET /api/shows/{id}/replay``
    (and ``livesale show replay``) gives the VOD playlist, its length, and a chapter for A and
    one for B where the recording's own clock stood at each feature."""
    products = [
        {"sku": sku, "title": title, "price": {"amount": 990, "currency": "EUR"}, "stock": 5}
        for sku, title in (("LIP-A", "Peony Red"), ("SRM-B", "Vitamin C Serum"))
    ]
    with server.client(headers=server.merchant) as merchant:
        assert merchant.post("/api/products/import", json=products).status_code == 201
    show = make_show(server)
    with server.client(headers=server.merchant) as merchant:
        lineup = [{"sku": p["sku"]} for p in products]
        assert merchant.put(f"/api/shows/{show.id}/lineup", json=lineup).is_success
    publisher = Publisher("h264")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await publisher.start(signal(client, f"/whip/{show.id}", show.host, []))
        started = time.monotonic()
        while publisher.video.frames == 0 and time.monotonic() - started < 60:
            await asyncio.sleep(0.1)
        first_frame = time.monotonic()
        await asyncio.sleep(1.0)
        at_a = time.monotonic() - first_frame
        await feature(server, show, "LIP-A")
        await asyncio.sleep(3.0)
        at_b = time.monotonic() - first_frame
        await feature(server, show, "SRM-B")
        await asyncio.sleep(3.0)
        at_off = time.monotonic() - first_frame
        await feature(server, show, None)
        await asyncio.sleep(1.5)
        before = await client.get(f"/api/shows/{show.id}/replay")
        assert before.status_code == 404, before.text  # no replay while live
        ended = await client.post(f"/api/shows/{show.id}/end", headers=server.merchant)
        assert ended.status_code == 200, ended.text
        await publisher.close()
        answer = await client.get(f"/api/shows/{show.id}/replay")
        assert answer.status_code == 200, answer.text
        replay = answer.json()
        unknown = await client.get("/api/shows/sh_nothere/replay")
        assert unknown.status_code == 404
    assert replay["playlist"] == f"/hls/{show.id}/vod.m3u8"
    assert [c["sku"] for c in replay["chapters"]] == ["LIP-A", "SRM-B"]
    a, b = replay["chapters"]
    assert a["title"] == "Peony Red" and b["title"] == "Vitamin C Serum"
    # On the recording's clock, within a segment of when the host pressed Feature.
    for chapter, pressed in ((a, at_a), (b, at_b)):
        assert abs(chapter["start_s"] - pressed) < SEGMENT, (chapter, pressed)
    assert a["end_s"] == b["start_s"] and abs(b["end_s"] - at_off) < SEGMENT
    assert b["end_s"] <= replay["duration_s"]
    assert abs(replay["duration_s"] - (time.monotonic() - first_frame)) < 4 * SEGMENT

    code = main(["show", "replay", show.id, "--json", "--server", server.url])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == replay
    assert main(["show", "replay", show.id, "--server", server.url]) == 0
    printed = capsys.readouterr().out
    assert f"{server.url}/hls/{show.id}/vod.m3u8" in printed and "Vitamin C Serum" in printed


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_a_host_who_reconnects_continues_the_recording(
    loopback_ice: None, server: LiveServer
) -> None:
    """A second WHIP session for the same show continues the same recording behind an
    ``#EXT-X-DISCONTINUITY``: one VOD playlist, both parts, time still moving forward."""
    show = make_show(server)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(2):
            publisher = Publisher("h264")
            await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
            started = time.monotonic()
            while publisher.video.frames < 30 * 4 and time.monotonic() - started < 120:
                await asyncio.sleep(0.1)
            await client.delete(responses[-1].headers["location"], headers=show.host)
            await publisher.close()
        ended = await client.post(f"/api/shows/{show.id}/end", headers=server.merchant)
        assert ended.status_code == 200, ended.text
        vod = (await client.get(f"/hls/{show.id}/vod.m3u8")).text
        assert vod.count("#EXT-X-DISCONTINUITY") == 1, vod
        probe = await ffprobe(f"{server.url}/hls/{show.id}/vod.m3u8")
    times = [float(p["pts_time"]) for p in probe["packets"] if p["codec_type"] == "video"]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] - times[0] >= 6.0


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_a_publisher_offering_only_vp8_gets_an_h264_replay(
    loopback_ice: None, server: LiveServer
) -> None:
    """Through the real relay: a WHIP publisher that offers VP8 alone is relayed as VP8 and
    recorded as H.264 HLS, so its show has a replay too."""
    show = make_show(server)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        publisher = Publisher("vp8")
        try:
            await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
            assert "VP8/90000" in responses[-1].text
            started = time.monotonic()
            while publisher.video.frames < 30 * 5 and time.monotonic() - started < 120:
                await asyncio.sleep(0.1)
        finally:
            await publisher.close()
        ended = await client.post(f"/api/shows/{show.id}/end", headers=server.merchant)
        assert ended.status_code == 200, ended.text
        replay = await client.get(f"/api/shows/{show.id}/replay")
        assert replay.status_code == 200, replay.text
        probe = await ffprobe(f"{server.url}/hls/{show.id}/vod.m3u8")
    assert {s["codec_name"] for s in probe["streams"] if s["codec_type"] == "video"} == {"h264"}
    times = [float(p["pts_time"]) for p in probe["packets"] if p["codec_type"] == "video"]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] - times[0] >= 2.0


# -- the recorder, fed directly ------------------------------------------------------------


class H264Source:
    """Encodes the test pattern with libx264 as a publisher would; a keyframe when asked."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.encoder = av.CodecContext.create("libx264", "w")
        self.encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1"}
        self.encoder.width, self.encoder.height = width, height
        self.encoder.pix_fmt = "yuv420p"
        self.encoder.time_base = fractions.Fraction(1, 90000)
        self.encoder.framerate = fractions.Fraction(30, 1)
        self.encoder.gop_size = 100_000
        self.frames = [pattern_frame(width, height, i) for i in range(width // 16)]
        self.count = 0
        self.keyframe = True
        self.requests = 0

    def request_keyframe(self) -> None:
        self.requests += 1
        self.keyframe = True

    def next(self) -> tuple[bytes, bool]:
        frame = self.frames[self.count % len(self.frames)]
        frame.pts = self.count * 3000
        frame.pict_type = (
            av.video.frame.PictureType.I if self.keyframe else av.video.frame.PictureType.NONE
        )
        self.keyframe = False
        self.count += 1
        (packet,) = self.encoder.encode(frame)
        return bytes(packet), packet.is_keyframe


def opus_packets(count: int) -> list[bytes]:
    """``count`` 20 ms Opus packets of a tone."""
    tone = ToneTrack()
    packets: list[bytes] = []
    while len(packets) < count:
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(tone._pcm)
        frame.sample_rate = 48000
        frame.pts = len(packets) * 960
        packets.extend(bytes(p) for p in tone._encoder.encode(frame))
    return packets[:count]


async def feed(
    recorder: Recorder, source: H264Source, seconds: float, *, rtp_base: int = 12345
) -> None:
    """``seconds`` of 30 fps video and 50 packets/s audio, as fast as the recorder takes them
    (its segments follow the RTP clocks, not the wall clock)."""
    sounds = opus_packets(int(seconds * 50))
    for index in range(int(seconds * 30)):
        data, keyframe = source.next()
        recorder.video(data, (rtp_base + index * 3000) % (1 << 32), keyframe)
        for sound in range(index * 5 // 3, (index + 1) * 5 // 3):
            recorder.audio(sounds[sound], (rtp_base + sound * 960) % (1 << 32))
        await asyncio.sleep(0)


async def record(
    recordings: Recordings, show_id: str, seconds: float
) -> tuple[Recorder, H264Source]:
    """The recorder of ``show_id`` fed ``seconds`` of a new H.264 publisher (:func:`feed`),
    and that publisher."""
    recorder = recordings.recorder(show_id)
    assert recorder is not None
    source = H264Source()
    recorder.new_source("h264", source.request_keyframe)
    await feed(recorder, source, seconds)
    return recorder, source


def recorded_show(settings: Settings, show_id: str, seconds: float) -> None:
    """``seconds`` of the show recorded into the server's media directory, ended."""

    async def run() -> None:
        recordings = Recordings(settings.recordings_dir, keep_days=0)
        await record(recordings, show_id, seconds)
        await recordings.ended(show_id)
        await recordings.aclose()

    asyncio.run(run())


def test_a_playlist_lists_every_segment_with_its_init_and_discontinuities() -> None:
    """A discontinuity and a new init segment appear where a segment says; VOD ends."""
    segments = [
        recording.Segment("seg-1.m4s", 2.0, "init-1.mp4", False, 1_700_000_000.0),
        recording.Segment("seg-2.m4s", 4.6, "init-1.mp4", False, 1_700_000_002.0),
        recording.Segment("seg-3.m4s", 1.9, "init-2.mp4", True, 1_700_000_060.25),
    ]
    text = playlist(segments, ended=True, vod=True)
    lines = text.splitlines()
    assert lines[:6] == [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:5",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert lines[6:] == [
        '#EXT-X-MAP:URI="init-1.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z",
        "#EXTINF:2.000,",
        "seg-1.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z",
        "#EXTINF:4.600,",
        "seg-2.m4s",
        "#EXT-X-DISCONTINUITY",
        '#EXT-X-MAP:URI="init-2.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:20.250Z",
        "#EXTINF:1.900,",
        "seg-3.m4s",
        "#EXT-X-ENDLIST",
    ]
    assert recording.read_playlist(text) == segments
    undated = [dataclasses.replace(s, date=None) for s in segments]
    assert "PROGRAM-DATE-TIME" not in playlist(undated, ended=True)
    assert recording.read_playlist(playlist(undated, ended=True)) == undated
    live = playlist(segments[:1], ended=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in live and "#EXT-X-ENDLIST" not in live


def test_the_live_playlist_slides_over_the_newest_segments() -> None:
    """A live window lists the newest segments lasting the window, and never less than three
    target durations; the media and discontinuity sequences count what left it, its first
    segment names its init segment, it has no playlist type; ``ENDLIST`` keeps the window."""
    segments = [
        recording.Segment(
            f"seg-{n}.m4s", 2.0, f"init-{1 if n < 5 else 2}.mp4", n in (5, 9), 1e9 + 2 * n
        )
        for n in range(1, 21)
    ]
    for window in (12.0, 4.0):  # 4 s is less than three target durations: 12 s stay
        lines = playlist(segments, ended=False, target=4, window=window).splitlines()
        assert lines[:6] == [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            "#EXT-X-TARGETDURATION:4",
            "#EXT-X-MEDIA-SEQUENCE:14",
            "#EXT-X-DISCONTINUITY-SEQUENCE:2",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        assert not any(line.startswith("#EXT-X-PLAYLIST-TYPE") for line in lines)
        assert lines[6] == '#EXT-X-MAP:URI="init-2.mp4"'
        assert [line for line in lines if line.startswith("seg-")] == [
            f"seg-{n}.m4s" for n in range(15, 21)
        ]
    ended = playlist(segments, ended=True, target=4, window=12.0)
    assert "#EXT-X-MEDIA-SEQUENCE:14" in ended and ended.endswith("#EXT-X-ENDLIST\n")
    whole = playlist(segments, ended=True, vod=True)
    assert "#EXT-X-MEDIA-SEQUENCE:0" in whole and "DISCONTINUITY-SEQUENCE" not in whole
    assert whole.count("seg-") == 20 and whole.count("#EXT-X-DISCONTINUITY\n") == 2


class SparseKeyframes(H264Source):
    """A publisher that answers keyframe requests only during its first ``answers`` frames,
    and otherwise makes a keyframe every ``every`` frames."""

    def __init__(self, answers: int, every: int) -> None:
        super().__init__()
        self.answers, self.every = answers, every

    def request_keyframe(self) -> None:
        self.requests += 1
        if self.count < self.answers:
            self.keyframe = True

    def next(self) -> tuple[bytes, bool]:
        if self.count % self.every == 0:
            self.keyframe = True
        return super().next()


def targets(directory: Path) -> set[str]:
    """The ``#EXT-X-TARGETDURATION`` lines of every playlist of a recording."""
    return {
        line
        for name in ("index.m3u8", "all.m3u8", "vod.m3u8")
        for line in (directory / name).read_text().splitlines()
        if line.startswith("#EXT-X-TARGETDURATION")
    }


async def test_the_target_duration_is_fixed_and_no_segment_exceeds_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A publisher that stops answering keyframe requests after its first segment: the target
    stays 4 s; a segment that reaches it without a keyframe is cut there, the frames up to
    the next keyframe left out (one warning), and the next segment follows a discontinuity."""
    recordings = Recordings(tmp_path, keep_days=0)
    recorder = recordings.recorder("sh_deaf")
    assert recorder is not None
    source = SparseKeyframes(answers=90, every=150)  # keyframes at 5 s and 10 s only
    recorder.new_source("h264", source.request_keyframe)
    with caplog.at_level(logging.WARNING, "livesale.media"):
        await feed(recorder, source, 12.0)
    await recordings.ended("sh_deaf")
    await recordings.aclose()
    directory = tmp_path / "sh_deaf"
    assert recorder.target_duration() == 4 and targets(directory) == {"#EXT-X-TARGETDURATION:4"}
    durations = [s.duration for s in recorder.segments]
    assert max(durations) == pytest.approx(4.0, abs=1e-3), durations
    assert [s.discontinuity for s in recorder.segments].count(True) == 1
    assert sum(durations) == pytest.approx(11.0, abs=0.05)  # 9 s to 10 s is left out
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no keyframe within 4 s" in warnings[0], warnings
    vod = (directory / "vod.m3u8").read_text()
    check_dates(vod)
    check_media(await ffprobe(str(directory / "vod.m3u8")), None)


async def test_a_publisher_with_sparse_keyframes_sets_a_longer_target(tmp_path: Path) -> None:
    """A publisher that never answers keyframe requests, with a keyframe every 8 s: its first
    segment fixes the target at 8 s, and its segments are whole, none cut short."""
    recordings = Recordings(tmp_path, keep_days=0)
    recorder = recordings.recorder("sh_obs")
    assert recorder is not None
    source = SparseKeyframes(answers=0, every=240)
    recorder.new_source("h264", source.request_keyframe)
    await feed(recorder, source, 20.0)
    await recordings.ended("sh_obs")
    await recordings.aclose()
    assert recorder.target_duration() == 8
    assert targets(tmp_path / "sh_obs") == {"#EXT-X-TARGETDURATION:8"}
    assert [round(s.duration, 2) for s in recorder.segments] == [8.0, 8.0, 4.0]
    assert not any(s.discontinuity for s in recorder.segments)


async def test_segments_are_cut_at_keyframes_about_two_seconds_apart(tmp_path: Path) -> None:
    """Fed 9 s, the recorder asks for keyframes when segments are due and cuts there: every
    segment but the last lasts 1.5-2.5 s, the total is the time fed, every file but the list
    of all segments is one the HLS routes serve, and ffprobe reads H.264 and Opus with
    increasing pts."""
    recordings = Recordings(tmp_path, keep_days=0)
    before = time.time()
    recorder, source = await record(recordings, "sh_test", 9.0)
    after = time.time()
    await recordings.ended("sh_test")
    await recordings.aclose()
    durations = [s.duration for s in recorder.segments]
    assert len(durations) >= 4, durations
    assert all(1.5 <= d <= 2.5 for d in durations[:-1]), durations
    assert sum(durations) == pytest.approx(9.0, abs=0.05)
    assert source.requests >= len(durations) - 1
    names = sorted(p.name for p in (tmp_path / "sh_test").iterdir())
    served = [name for name in names if name != recording.ALL]  # the recorder's own list
    assert all(FILE_NAME.fullmatch(name) for name in served), names
    assert "vod.m3u8" in names and "init-1.mp4" in names
    check_media(await ffprobe(str(tmp_path / "sh_test" / "vod.m3u8")), 9.0)
    # The first segment is dated when its first frame came; the rest follow their durations.
    found = check_dates((tmp_path / "sh_test" / "vod.m3u8").read_text())
    assert before <= found[0][0] <= after
    assert [d for _, d in found] == pytest.approx([s.duration for s in recorder.segments], abs=1e-3)


async def test_a_new_publisher_continues_behind_a_discontinuity(tmp_path: Path) -> None:
    """A reconnecting host with another resolution gets a new init segment after an
    ``#EXT-X-DISCONTINUITY``; the timeline goes on forward across both."""
    recordings = Recordings(tmp_path, keep_days=0)
    recorder = recordings.recorder("sh_again")
    assert recorder is not None
    first = H264Source(320, 240)
    recorder.new_source("h264", first.request_keyframe)
    await feed(recorder, first, 4.0)
    second = H264Source(640, 480)
    recorder.new_source("h264", second.request_keyframe)
    await feed(recorder, second, 4.0, rtp_base=(1 << 32) - 30_000)  # wraps around too
    await recordings.ended("sh_again")
    await recordings.aclose()
    vod = (tmp_path / "sh_again" / "vod.m3u8").read_text()
    assert vod.count("#EXT-X-DISCONTINUITY") == 1
    assert '#EXT-X-MAP:URI="init-1.mp4"' in vod and '#EXT-X-MAP:URI="init-2.mp4"' in vod
    check_dates(vod)
    probe = await ffprobe(str(tmp_path / "sh_again" / "vod.m3u8"))
    sizes = {(s["width"], s["height"]) for s in probe["streams"] if s["codec_type"] == "video"}
    assert sizes & {(320, 240), (640, 480)}
    times = [float(p["pts_time"]) for p in probe["packets"] if p["codec_type"] == "video"]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


class Vp8Source(H264Source):
    """The test pattern encoded with libvpx, as a publisher that offers only VP8 sends it."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__(width, height)
        self.encoder = av.CodecContext.create("libvpx", "w")
        self.encoder.width, self.encoder.height = width, height
        self.encoder.pix_fmt = "yuv420p"
        self.encoder.time_base = fractions.Fraction(1, 90000)
        self.encoder.framerate = fractions.Fraction(30, 1)
        self.encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        self.encoder.gop_size = 100_000


async def test_a_vp8_publisher_is_recorded_as_h264(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HLS has no VP8: a publisher that offers only VP8 is decoded and encoded again as H.264
    for the recording, which ffprobe reads as H.264 video with audio, timestamps in order.
    The recorder's keyframe requests go to its own encoder, never to the publisher."""
    recordings = Recordings(tmp_path, keep_days=0)
    recorder = recordings.recorder("sh_vp8")
    assert recorder is not None
    source = Vp8Source()
    with caplog.at_level(logging.INFO, "livesale.media"):
        recorder.new_source("vp8", source.request_keyframe)
    assert "show sh_vp8: VP8 video is recorded as H.264, encoded again" in caplog.messages
    sounds = opus_packets(6 * 50)
    for index in range(6 * 30):
        data, keyframe = source.next()
        recorder.video(data, 12345 + index * 3000, keyframe)
        for sound in range(index * 5 // 3, (index + 1) * 5 // 3):
            recorder.audio(sounds[sound], 777 + sound * 960)
        # About twice real time: the transcoder's thread keeps up, as on a live show.
        await asyncio.sleep(1 / 60)
    await asyncio.sleep(0.5)
    await recordings.ended("sh_vp8")
    await recordings.aclose()
    assert source.requests == 0  # segments were cut on the transcoder's own keyframes
    vod = tmp_path / "sh_vp8" / "vod.m3u8"
    segments = [line for line in vod.read_text().splitlines() if line.startswith("seg-")]
    assert len(segments) >= 2, vod.read_text()
    probe = await ffprobe(str(vod))
    codecs = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
    assert codecs == {"video": "h264", "audio": "opus"}, codecs
    times = [float(p["pts_time"]) for p in probe["packets"] if p["codec_type"] == "video"]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] - times[0] >= 4.5


async def test_a_publisher_without_video_is_not_recorded_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A publisher sending audio alone: one warning, no files, no playlist."""
    recordings = Recordings(tmp_path, keep_days=0)
    recorder = recordings.recorder("sh_mute")
    assert recorder is not None
    with caplog.at_level(logging.WARNING, "livesale.media"):
        recorder.new_source(None, lambda: None)
    recorder.audio(b"\xfc", 0)
    await recordings.ended("sh_mute")
    await recordings.aclose()
    assert [r.getMessage() for r in caplog.records] == [
        "show sh_mute: audio alone is not recorded (recording needs H.264 or VP8 video)"
    ]
    assert not (tmp_path / "sh_mute").exists()


def test_recorders_only_exist_for_show_ids_that_are_directory_names(tmp_path: Path) -> None:
    """A show id that could leave the media directory gets no recorder."""
    recordings = Recordings(tmp_path)
    try:
        assert recordings.recorder("../etc") is None
        assert recordings.recorder("a/b") is None
        assert recordings.recorder("sh_ok") is not None
    finally:
        recordings._executor.shutdown()


def test_old_recordings_are_pruned(tmp_path: Path) -> None:
    """A recording whose newest file is older than the limit goes; a fresh one stays."""
    old, fresh = tmp_path / "sh_old", tmp_path / "sh_fresh"
    for show in (old, fresh):
        show.mkdir()
        (show / "seg-1.m4s").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a recording")
    day = 86400
    os.utime(old / "seg-1.m4s", (time.time() - 31 * day, time.time() - 31 * day))
    assert prune(tmp_path, 30 * day) == 1
    assert not old.exists() and fresh.exists() and (tmp_path / "notes.txt").exists()


FULL_DISK = """
import asyncio, logging, sys
from pathlib import Path
from livesale.media.recording import Recordings
from tests.media.test_recording import H264Source, feed

async def main() -> None:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
    recordings = Recordings(Path(sys.argv[1]), keep_days=0)
    recorder = recordings.recorder("sh_full")
    source = H264Source()
    recorder.new_source("h264", source.request_keyframe)
    await feed(recorder, source, 12.0)  # keeps going after the disk is full: never raises
    for _ in range(100):
        if recorder.failed:
            break
        await asyncio.sleep(0.05)
    await feed(recorder, source, 2.0)
    await recordings.ended("sh_full")
    await recordings.aclose()
    print("failed" if recorder.failed else "recorded", len(recorder.segments))

asyncio.run(main())
"""


@pytest.mark.timeout(300)
def test_a_full_disk_stops_the_recording_with_one_line(tmp_path: Path) -> None:
    """On a real full disk (a 64 KiB tmpfs in a mount namespace of its own) the recording stops
    with one error line naming ENOSPC's message; feeding it more raises nothing."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("unshare") is None or os.geteuid() != 0:
        if in_ci():
            pytest.fail("a full disk needs unshare and root (a tmpfs of its own)")
        pytest.skip("a full disk needs unshare and root (a tmpfs of its own)")
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$1" -c "$2" "$0"',
            str(disk),
            sys.executable,
            FULL_DISK,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, done.stderr
    assert "recording stopped, the show goes on: No space left on device" in errors[0]
    assert done.stdout.split()[0] == "failed"


def test_serve_prunes_recordings_older_than_keep_recordings_at_start(
    spawn: Any, tmp_path: Path
) -> None:
    """`livesale serve --media-dir DIR --keep-recordings 2` deletes, as it starts, the
    recordings of DIR untouched for more than 2 days, and keeps the others."""
    media = tmp_path / "recordings"
    old, fresh = media / "sh_old", media / "sh_fresh"
    for show in (old, fresh):
        show.mkdir(parents=True)
        (show / "seg-1.m4s").write_bytes(b"x")
    three_days_ago = time.time() - 3 * 86400
    os.utime(old / "seg-1.m4s", (three_days_ago, three_days_ago))
    server = spawn(
        "--data-dir", str(tmp_path / "data"), "--media-dir", str(media), "--keep-recordings", "2"
    )
    deadline = time.monotonic() + 30
    while old.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not old.exists(), server.output()
    assert fresh.exists()
    assert "deleted 1 recordings older than 2 days" in server.output()


async def test_a_restarted_server_continues_the_recording_it_left(tmp_path: Path) -> None:
    """After a restart mid-show, the recording goes on in the same playlist: the earlier
    segments stay listed, no file name is reused, and time goes on after them."""
    first = Recordings(tmp_path, keep_days=0)
    await record(first, "sh_restart", 4.0)
    await first.aclose()  # the server stops; the show is still live
    written = {p.name: p.read_bytes() for p in (tmp_path / "sh_restart").iterdir()}
    assert "vod.m3u8" not in written

    second = Recordings(tmp_path, keep_days=0)
    after, _ = await record(second, "sh_restart", 4.0)
    await second.ended("sh_restart")
    await second.aclose()
    for name, data in written.items():
        if name not in ("index.m3u8", "all.m3u8"):  # the playlists go on
            assert (tmp_path / "sh_restart" / name).read_bytes() == data, name
    vod = (tmp_path / "sh_restart" / "vod.m3u8").read_text()
    names = [line for line in vod.splitlines() if line.startswith("seg-")]
    assert len(names) == len(set(names)) == len(after.segments)
    assert names == [f"seg-{n}.m4s" for n in range(1, len(names) + 1)]  # numbers go on
    assert '#EXT-X-MAP:URI="init-2.mp4"' in vod
    assert vod.count("#EXT-X-DISCONTINUITY") == 1
    check_dates(vod)  # the dates go on after the earlier run's, behind the discontinuity
    probe = await ffprobe(str(tmp_path / "sh_restart" / "vod.m3u8"))
    check_media(probe, 8.0)


@pytest.mark.parametrize("earlier", ["all.m3u8", "a live playlist of every segment"])
async def test_a_restarted_server_continues_past_the_live_window(
    tmp_path: Path, earlier: str
) -> None:
    """A recording longer than the live window continues after a restart from its list of
    every segment (or, for one made before there was such a list, from a live playlist that
    listed them all): the VOD has every segment of both runs, the live playlist the newest,
    its media sequence counting on."""
    directory = tmp_path / "sh_long"
    first = Recordings(tmp_path, keep_days=0, live_window=4.0)  # three target durations: 12 s
    before, _ = await record(first, "sh_long", 20.0)
    await first.aclose()
    live = (directory / "index.m3u8").read_text()
    left = int(live.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
    assert left > 0 and sum(d for _, d in dates(live)) >= 12.0
    assert "all.m3u8" not in live and "PLAYLIST-TYPE" not in live
    earlier_names = [s.name for s in before.segments]
    if earlier != "all.m3u8":
        (directory / "index.m3u8").write_text((directory / "all.m3u8").read_text())
        (directory / "all.m3u8").unlink()

    second = Recordings(tmp_path, keep_days=0, live_window=4.0)
    after, _ = await record(second, "sh_long", 4.0)
    await second.ended("sh_long")
    await second.aclose()
    vod = (directory / "vod.m3u8").read_text()
    names = [line for line in vod.splitlines() if line.startswith("seg-")]
    assert names[: len(earlier_names)] == earlier_names
    assert len(names) == len(set(names)) == len(after.segments) > len(earlier_names)
    final = (directory / "index.m3u8").read_text()
    assert final.endswith("#EXT-X-ENDLIST\n")
    listed = [line for line in final.splitlines() if line.startswith("seg-")]
    assert listed == names[-len(listed) :] and len(listed) < len(names)
    assert f"#EXT-X-MEDIA-SEQUENCE:{len(names) - len(listed)}" in final
    assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in final  # the restart's is still listed
    assert targets(directory) == {"#EXT-X-TARGETDURATION:4"}
    check_dates(vod)
    check_media(await ffprobe(str(directory / "vod.m3u8")), 24.0)


def test_chapters_run_from_mark_to_mark_within_the_replay() -> None:
    """Each featured interval ends at the next mark or the replay's end; an unfeature ends one
    and starts none; two features at once leave no empty chapter; marks past the end clip."""
    marks = [
        {"sku": "B", "at_s": 30.0},
        {"sku": "A", "at_s": 5.0},
        {"sku": None, "at_s": 20.0},
        {"sku": "C", "at_s": 30.0},
        {"sku": "D", "at_s": 90.0},
    ]
    found = chapters(marks, 60.0, {"A": "Peony Red"})
    assert [(c.sku, c.title, c.start_s, c.end_s) for c in found] == [
        ("A", "Peony Red", 5.0, 20.0),
        ("C", "C", 30.0, 60.0),
    ]
