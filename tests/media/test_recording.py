"""Recording over a real server: an aiortc publisher's H.264 and Opus become HLS that ffprobe
reads over HTTP, live during the show and as VOD after its end."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.media.peers import Publisher
from tests.media.test_routes import make_show, signal

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

#: Seconds the publisher sends before the show ends.
PUBLISHED = 8.0
SEGMENT = 2.0


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """The server offers 127.0.0.1 as its only ICE candidate and records into ``tmp_path``."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        ice_hosts=("127.0.0.1",),
        payments=("test", "manual"),
    )


def ffprobe_path() -> str:
    found = shutil.which("ffprobe")
    if found is None:
        if os.environ.get("CI") == "true":
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
        final = await client.get(f"/hls/{show.id}/index.m3u8")
        assert "#EXT-X-ENDLIST" in final.text
    assert encoder_calls == []
