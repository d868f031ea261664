"""The pass-through relay with real aiortc peers, driven through the hub (no HTTP)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from livesale.media._aiortc import check_aiortc_internals
from livesale.media.hub import HubTimings, MediaHub
from livesale.media.ice import IceConfig
from tests.media.peers import Publisher, Viewer

# A busy machine may slow these tests many times over: the per-test timeout leaves room for
# several of the deadlines below.
pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

SHOW = "show-1"
#: Deadline for anything the relay must do: it only catches a hang (the suite also runs on a
#: machine whose cores are busy); how fast it happens is measured by ``scripts/bench_relay.py``.
DEADLINE = 180.0


def whip(hub: MediaHub, show: str = SHOW):  # type: ignore[no-untyped-def]
    async def signal(offer: str) -> str:
        return (await hub.publish(show, offer)).answer

    return signal


def whep(hub: MediaHub, show: str = SHOW):  # type: ignore[no-untyped-def]
    async def signal(offer: str) -> str:
        return (await hub.play(show, offer)).answer

    return signal


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_three_viewers_decode_the_pattern_without_transcoding(
    hub: MediaHub, encoder_calls: list[str], decode_failures: list[str], codec: str
) -> None:
    """Three viewers each decode 60+ frames of the publisher's pattern; nothing is re-encoded."""
    publisher = Publisher(codec)
    await publisher.start(whip(hub))
    viewers = [Viewer() for _ in range(3)]
    for viewer in viewers:
        await viewer.start(whep(hub))
    try:
        await asyncio.gather(*(v.wait_frames(60, timeout=DEADLINE) for v in viewers))
        for viewer in viewers:
            assert viewer.bad == 0
            assert len(viewer.bars) >= 10, "the pattern must be moving"
            assert viewer.audio_frames > 20
        assert encoder_calls == []
        # Every viewer started on a keyframe: its decoder never met a frame it could not use.
        assert decode_failures == []
        assert hub.stats.video_frames_forwarded >= 180
        assert hub.stats.bytes_forwarded > 0
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


async def test_late_viewer_gets_a_keyframe_and_decodes(
    hub: MediaHub, encoder_calls: list[str], decode_failures: list[str]
) -> None:
    """A viewer joining 4 s in gets a keyframe (its PLI forwarded) and decodes the pattern; the
    publisher makes none on its own, so without the forwarded request it would decode nothing.
    (Its time to the first frame: ``scripts/bench_relay.py``, "late joiner".)"""
    publisher = Publisher("vp8")  # keyframes only at the start and when asked
    await publisher.start(whip(hub))
    early = Viewer()
    await early.start(whep(hub))
    await early.wait_frames(10, timeout=DEADLINE)
    await asyncio.sleep(4)
    late = Viewer()
    try:
        await late.start(whep(hub))
        await late.wait_frames(1, timeout=DEADLINE)
        assert late.answered_at is not None and late.first_frame_at is not None
        assert late.bad == 0
        assert hub.stats.keyframe_requests >= 2
        assert encoder_calls == []
        assert decode_failures == []
    finally:
        await late.close()
        await early.close()
        await publisher.close()


async def test_host_reconnect_resumes_viewers_without_renegotiation(
    loopback_ice: None, encoder_calls: list[str]
) -> None:
    """When the host drops and publishes again, connected viewers resume on the same connection.
    (How soon: ``scripts/bench_relay.py``, "host back after a pause".)"""
    events: list[tuple[str, bool]] = []

    async def on_paused(show_id: str, paused: bool) -> None:
        events.append((show_id, paused))

    hub = MediaHub(
        IceConfig(hosts=("127.0.0.1",)),
        on_paused=on_paused,
        timings=HubTimings(pause_after=0.5, tick=0.2),
    )
    await hub.start()
    first = Publisher("vp8")
    await first.start(whip(hub))
    viewer = Viewer()
    await viewer.start(whep(hub))
    try:
        await viewer.wait_frames(30, timeout=DEADLINE)
        viewer_pc = viewer.pc
        await first.close()  # the host's tab goes away
        deadline = time.monotonic() + DEADLINE
        while (SHOW, True) not in events:
            assert time.monotonic() < deadline, f"the show never paused: {events}"
            await asyncio.sleep(0.1)
        before = viewer.matching
        second = Publisher("vp8")
        await second.start(whip(hub))
        await viewer.wait_frames(before + 30, timeout=DEADLINE)
        assert viewer.pc is viewer_pc and viewer.pc.connectionState == "connected"
        assert viewer.bad == 0
        assert events[-1] == (SHOW, False)
        assert encoder_calls == []
        await second.close()
    finally:
        await viewer.close()
        await hub.aclose()
    assert hub.peer_connections == 0 and hub.tasks == 0


async def test_packets_a_viewer_lost_are_resent_from_history(
    hub: MediaHub, encoder_calls: list[str], decode_failures: list[str]
) -> None:
    """A viewer that loses video packets asks for them (NACK) and gets each one again, as RTX,
    from its sender's history: its picture stays whole and nothing is re-encoded."""
    publisher = Publisher("vp8")
    await publisher.start(whip(hub))
    viewer = Viewer(audio=False)
    lost, resent = drop_video_packets(viewer, every=11)
    await viewer.start(whep(hub))
    try:
        await viewer.wait_frames(90, timeout=DEADLINE)
        assert len(lost) >= 5
        # Every packet lost long enough ago to have been asked for came back.
        settled = sorted(lost)[: len(lost) - 2]
        assert set(settled) <= resent, f"not resent: {set(settled) - resent}"
        assert hub.stats.retransmissions >= len(settled)
        assert viewer.bad == 0
        assert encoder_calls == [] and decode_failures == []
    finally:
        await viewer.close()
        await publisher.close()


def drop_video_packets(viewer: Viewer, *, every: int) -> tuple[set[int], set[int]]:
    """Make ``viewer`` lose each video packet whose sequence number is a multiple of ``every``
    the first time it arrives (as if the network dropped it), once its first frames are in: a
    receiver can only ask for a packet after one it has seen. Returns the sets of sequence
    numbers ``(lost, resent)``, filled as packets arrive; a resent packet comes as RTX (RFC
    4588), its original sequence number first in the payload."""
    from aiortc.codecs import is_rtx

    receiver = viewer.pc.getTransceivers()[0].receiver
    handle = receiver._handle_rtp_packet
    lost: set[int] = set()
    resent: set[int] = set()
    seen = [0]

    async def arrive(packet: Any, arrival_time_ms: int) -> None:
        codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is not None and is_rtx(codec):
            resent.add(int.from_bytes(packet.payload[:2], "big"))
        else:
            seen[0] += 1
            number = packet.sequence_number
            if seen[0] > 10 and number % every == 0 and number not in lost:
                lost.add(number)
                return
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = arrive
    return lost, resent


async def test_sessions_end_with_no_peer_connections_or_tasks_left(hub: MediaHub) -> None:
    """After DELETE of every session the hub holds no peer connection, task or broadcast."""
    baseline = set(asyncio.all_tasks())
    publisher = Publisher("vp8")
    published = await hub.publish(SHOW, await _offer(publisher))
    await publisher.pc.setRemoteDescription(_answer(published.answer))
    viewer = Viewer()
    watched = await hub.play(SHOW, await _offer(viewer))
    await viewer.pc.setRemoteDescription(_answer(watched.answer))
    await viewer.wait_frames(5, timeout=DEADLINE)
    assert hub.peer_connections == 2

    assert await hub.end(watched.id)
    assert await hub.end(published.id)
    assert not await hub.end(published.id)
    assert hub.peer_connections == 0
    assert hub.tasks == 0
    assert hub.broadcasts == {} and hub.sessions == {}
    assert hub.stats.publishers == 0 and hub.stats.viewers == 0
    await viewer.close()
    await publisher.close()
    leftover: set[asyncio.Task[object]] = set()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        leftover = set(asyncio.all_tasks()) - baseline - {asyncio.current_task()}  # type: ignore[operator]
        if not leftover:
            break
        await asyncio.sleep(0.1)
    assert not leftover, f"tasks left running: {leftover}"


async def test_session_that_never_connects_is_closed(loopback_ice: None) -> None:
    """A viewer that posts an offer and never completes ICE is closed after the timeout."""
    hub = MediaHub(
        IceConfig(hosts=("127.0.0.1",)),
        timings=HubTimings(connect_timeout=1.0, tick=0.2),
    )
    await hub.start()
    publisher = Publisher("vp8")
    try:
        await publisher.start(whip(hub))
        ghost = Viewer()
        await hub.play(SHOW, await _offer(ghost))  # the answer is never applied
        assert hub.stats.viewers == 1
        # The session is dropped first, its peer connection closed right after.
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if hub.stats.viewers == 0 and hub.peer_connections == 1:
                break
            await asyncio.sleep(0.1)
        assert hub.stats.viewers == 0
        assert hub.stats.viewers_dropped == 1
        assert hub.peer_connections == 1  # only the publisher is left
        await ghost.close()
    finally:
        await publisher.close()
        await hub.aclose()
    assert hub.peer_connections == 0 and hub.tasks == 0


def test_aiortc_internals_the_relay_hooks_are_in_place() -> None:
    """Fails loudly if an aiortc upgrade moved a hook the pass-through relay depends on."""
    check_aiortc_internals()


async def _offer(peer: Publisher | Viewer) -> str:
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    return str(peer.pc.localDescription.sdp)


def _answer(sdp: str):  # type: ignore[no-untyped-def]
    from aiortc import RTCSessionDescription

    return RTCSessionDescription(sdp=sdp, type="answer")
