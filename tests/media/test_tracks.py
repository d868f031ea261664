"""The relay's per-viewer tracks, channels and keyframe requests (no network involved)."""

from __future__ import annotations

import asyncio

from aiortc import RTCRtpCodecCapability
from aiortc.codecs.vpx import vp8_depayload

from livesale.media.metrics import MediaStats
from livesale.media.packetizer import RtpFrame
from livesale.media.relay import Channel, KeyframeRequester, RelayTrack

VP8 = RTCRtpCodecCapability(mimeType="video/VP8", clockRate=90000)


def video_channel() -> Channel:
    return Channel("video", 90000, VP8)


def body(frame: RtpFrame) -> bytes:
    """The encoded frame carried by ``frame``'s RTP payloads."""
    return b"".join(vp8_depayload(payload) for payload in frame.payloads)


def track(kind: str = "video", max_queue: int = 4) -> tuple[RelayTrack, list[int], MediaStats]:
    requests: list[int] = []
    stats = MediaStats()
    relay = RelayTrack(kind, stats, lambda: requests.append(1), max_queue=max_queue)
    return relay, requests, stats


async def test_viewer_starts_on_a_keyframe() -> None:
    """Frames before the first keyframe are not forwarded; the first one out is a keyframe."""
    relay, requests, stats = track()
    channel = video_channel()
    channel.add(relay)
    channel.push(b"delta-1", 0, False)
    channel.push(b"key", 3000, True)
    channel.push(b"delta-2", 6000, False)
    first = await relay.recv()
    second = await relay.recv()
    assert (body(first), first.keyframe) == (b"key", True)
    assert (body(second), second.keyframe) == (b"delta-2", False)
    assert requests == [1], "a starting sender asks for a keyframe"
    assert stats.video_frames_forwarded == 2 and stats.bytes_forwarded == 10


async def test_overflow_flushes_and_waits_for_the_next_keyframe() -> None:
    """A viewer that falls behind is flushed, never skips single frames, resyncs on a keyframe."""
    relay, requests, stats = track(max_queue=3)
    channel = video_channel()
    channel.add(relay)
    channel.push(b"key-1", 0, True)
    for index in range(1, 6):
        channel.push(f"delta-{index}".encode(), index * 3000, False)
    assert stats.viewer_resyncs == 1
    assert requests == [1]
    channel.push(b"delta-6", 18000, False)
    channel.push(b"key-2", 21000, True)
    channel.push(b"delta-7", 24000, False)
    received = [body(await relay.recv()) for _ in range(2)]
    assert received == [b"key-2", b"delta-7"]


async def test_channel_timeline_continues_across_publishers() -> None:
    """A new publisher's frames continue after the old one's: no jump back, a gap forward."""
    relay, _, _ = track(max_queue=50)
    channel = video_channel()
    channel.add(relay)
    channel.push(b"k", 4_294_960_000, True)  # near the 32-bit wrap
    channel.push(b"d", 2_000, False)  # wrapped
    channel.new_source()
    await asyncio.sleep(0.1)
    channel.push(b"k2", 123, True)
    pts = [(await relay.recv()).timestamp for _ in range(3)]
    assert pts[1] - pts[0] == 9_296
    assert pts[2] - pts[1] >= 9_000 - 1  # about 100 ms at 90 kHz


async def test_frames_are_packetised_once_for_every_viewer() -> None:
    """Every viewer gets the same payload objects; a large frame is split into packets."""
    first, _, _ = track(max_queue=10)
    second, _, _ = track(max_queue=10)
    channel = video_channel()
    channel.add(first)
    channel.add(second)
    keyframe = bytes(range(256)) * 20
    channel.push(keyframe, 0, True)
    a, b = await first.recv(), await second.recv()
    assert a is b
    assert len(a.payloads) > 1 and body(a) == keyframe


async def test_stopped_track_ends_its_sender_and_leaves_the_channel() -> None:
    """Stopping a track wakes its sender with MediaStreamError and unregisters it."""
    from aiortc.mediastreams import MediaStreamError

    relay, _, _ = track()
    channel = video_channel()
    channel.add(relay)
    waiting = asyncio.ensure_future(relay.recv())
    await asyncio.sleep(0)
    relay.stop()
    try:
        await waiting
    except MediaStreamError:
        pass
    else:
        raise AssertionError("recv() returned after stop()")
    assert channel.tracks == []


async def test_keyframe_requests_are_rate_limited_and_coalesced() -> None:
    """Many requests inside one interval give one request now and one when it ends."""
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    requester = KeyframeRequester(
        lambda: bool(sent.append(loop.time())) or True, MediaStats(), min_interval=0.2
    )
    # All inside one interval however slow the machine: no loop turn between them.
    for _ in range(20):
        requester.request()
    assert len(sent) == 1
    await asyncio.sleep(0.25)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 0.19
    requester.request()
    requester.close()
    await asyncio.sleep(0.25)
    assert len(sent) == 2


async def test_an_attached_sink_gets_queued_frames_then_each_frame_as_it_comes() -> None:
    """Once its sender starts, a viewer is written to directly: what waited first, in order,
    then every frame inside the channel's fan-out, with no task switch in between."""
    relay, requests, stats = track(max_queue=10)
    channel = video_channel()
    channel.add(relay)
    channel.push(b"delta-0", 0, False)  # before any keyframe: never forwarded
    channel.push(b"key", 3000, True)
    channel.push(b"delta-1", 6000, False)
    sent: list[bytes] = []

    def sink(frame: RtpFrame) -> bool:
        sent.append(body(frame))
        return True

    attached = asyncio.ensure_future(relay.attach(sink))
    await asyncio.sleep(0)
    assert sent == [b"key", b"delta-1"]
    assert requests == [1], "a starting sender asks for a keyframe"
    channel.push(b"delta-2", 9000, False)
    assert sent[-1] == b"delta-2"  # written synchronously by push()
    assert stats.video_frames_forwarded == 3
    relay.stop()
    await attached
    assert channel.tracks == []


async def test_a_sink_that_falls_behind_resyncs_on_the_next_keyframe() -> None:
    """A viewer whose socket is backed up skips whole frames up to the next keyframe, never
    single frames, and the publisher is asked for one."""
    relay, requests, stats = track()
    channel = video_channel()
    channel.add(relay)
    backed_up = False
    sent: list[bytes] = []

    def sink(frame: RtpFrame) -> bool:
        if backed_up:
            return False
        sent.append(body(frame))
        return True

    attached = asyncio.ensure_future(relay.attach(sink))
    await asyncio.sleep(0)
    channel.push(b"key-1", 0, True)
    channel.push(b"delta-1", 3000, False)
    backed_up = True
    channel.push(b"delta-2", 6000, False)
    backed_up = False
    channel.push(b"delta-3", 9000, False)
    channel.push(b"key-2", 12000, True)
    channel.push(b"delta-4", 15000, False)
    assert sent == [b"key-1", b"delta-1", b"key-2", b"delta-4"]
    assert stats.viewer_resyncs == 1
    assert len(requests) == 2  # the sender's start, then the resync
    relay.stop()
    await attached


async def test_a_viewer_whose_transport_closed_leaves_without_disturbing_others() -> None:
    """A sink raising ConnectionError stops its track, which leaves the channel; the other
    viewers of the same frame still get it."""
    gone, _, _ = track()
    staying, _, _ = track()
    channel = video_channel()
    channel.add(gone)
    channel.add(staying)
    sent: list[bytes] = []

    def closed(frame: RtpFrame) -> bool:
        raise ConnectionError("Cannot send encrypted RTP, not connected")

    def sink(frame: RtpFrame) -> bool:
        sent.append(body(frame))
        return True

    first = asyncio.ensure_future(gone.attach(closed))
    second = asyncio.ensure_future(staying.attach(sink))
    await asyncio.sleep(0)
    channel.push(b"key", 0, True)
    assert sent == [b"key"]
    assert gone.readyState == "ended" and channel.tracks == [staying]
    await first
    staying.stop()
    await second
