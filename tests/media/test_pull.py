"""A show pulled from the hub holding its publisher into another node's hub (``MediaHub.pull``),
with real aiortc peers and no HTTP: the edge hub is a WHEP player of the origin hub, and its own
viewers get the show from the edge. The nodes' HTTP side is ``tests/media/test_nodes.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from livesale.media.errors import NoPublisher
from livesale.media.hub import PULL, HubTimings, MediaHub
from livesale.media.ice import IceConfig
from tests.media.peers import Publisher, Viewer
from tests.media.test_relay import DEADLINE, SHOW, whip

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

#: The edge ends a pull this long after its last viewer, and a silent pull this long after its
#: last packet: short, so the test sees both; the origin's deadlines stay generous.
LINGER, SILENCE = 1.0, 4.0


def started(timings: HubTimings, paused: list[tuple[str, bool]] | None = None) -> MediaHub:
    async def on_paused(show_id: str, is_paused: bool) -> None:
        if paused is not None:
            paused.append((show_id, is_paused))

    return MediaHub(IceConfig(hosts=("127.0.0.1",)), timings=timings, on_paused=on_paused)


@pytest.fixture
async def hubs(loopback_ice: None) -> AsyncIterator[tuple[MediaHub, MediaHub, list[object]]]:
    """The origin's hub, an edge hub, and the pauses the edge announced (none: the origin
    announces its publisher's)."""
    generous = HubTimings(connect_timeout=60.0, silence_timeout=60.0, pause_after=5.0)
    edge_paused: list[object] = []
    origin = started(generous)
    edge = started(
        HubTimings(
            connect_timeout=60.0, silence_timeout=SILENCE, pause_after=1.0, pull_linger=LINGER
        ),
        edge_paused,  # type: ignore[arg-type]
    )
    await origin.start()
    await edge.start()
    yield origin, edge, edge_paused
    await edge.aclose()
    await origin.aclose()
    for hub in (origin, edge):
        assert hub.peer_connections == 0
        assert hub.tasks == 0


class Wire:
    """The edge's signalling with one origin hub, as the nodes' WHEP over HTTP would carry it:
    each pull is a player of the origin, ended by its session's URL."""

    def __init__(self, origin: MediaHub) -> None:
        self.origin = origin
        self.offers = 0
        self.ended: list[str] = []

    async def signal(self, offer: str) -> tuple[str, str]:
        self.offers += 1
        session = await self.origin.play(SHOW, offer, "edge-node")
        return session.answer, f"http://origin/whep/{SHOW}/{session.id}"

    async def hang_up(self, location: str) -> None:
        self.ended.append(location)
        await self.origin.end(location.rsplit("/", 1)[1], SHOW)


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def edge_play(edge: MediaHub, wire: Wire) -> Callable[[str], Awaitable[str]]:
    """A viewer's WHEP at the edge: the show pulled first (once, whoever asks), then played."""

    async def signal(offer: str) -> str:
        await edge.pull(SHOW, wire.signal, wire.hang_up)
        return (await edge.play(SHOW, offer, "viewer")).answer

    return signal


async def test_the_edge_pulls_once_for_all_its_viewers_and_lets_go_after_the_last(
    hubs: tuple[MediaHub, MediaHub, list[object]],
    encoder_calls: list[str],
    decode_failures: list[str],
) -> None:
    """Three viewers of the edge decode the publisher's pattern through one pull, which is one
    player at the origin; nothing is re-encoded; the pull ends at the origin once the edge's
    last viewer has gone; the edge announced no pause of its own."""
    origin, edge, edge_paused = hubs
    wire = Wire(origin)
    with pytest.raises(NoPublisher):  # no publisher yet: the origin's 409 is the edge's
        await edge.pull(SHOW, wire.signal, wire.hang_up)
    assert SHOW not in edge.broadcasts and edge.peer_connections == 0
    publisher = Publisher("h264")
    await publisher.start(whip(origin))
    await until(lambda: origin.can_play(SHOW), "the origin never got the publisher's media")
    viewers = [Viewer() for _ in range(3)]
    try:
        # All at once: they share one pull.
        await asyncio.gather(*(v.start(edge_play(edge, wire)) for v in viewers))
        await asyncio.gather(*(v.wait_frames(30, timeout=DEADLINE) for v in viewers))
        assert origin.stats.viewers == 1 and edge.stats.pulls == 1 and edge.stats.viewers == 3
        assert wire.offers == 2  # the refused one, then one for three viewers
        assert edge.relayed() == {SHOW} and edge.published() == set()
        assert all(v.bad == 0 for v in viewers)
        assert encoder_calls == [] and decode_failures == []
        assert SHOW not in edge.orphaned()

        for session in [s for s in edge.sessions.values() if s.role != PULL]:
            assert await edge.end(session.id)
        await until(lambda: edge.stats.pulls == 0, "the pull outlived the edge's viewers")
        await until(lambda: origin.stats.viewers == 0, "the origin still relays to the edge")
        assert len(wire.ended) == 1
        assert edge_paused == []
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


async def test_viewers_whose_pulled_feed_ended_resume_on_the_next_pull(
    hubs: tuple[MediaHub, MediaHub, list[object]], decode_failures: list[str]
) -> None:
    """The origin's publisher goes: the edge's pull falls silent and ends, its viewer is an
    orphan (its session kept). The show pulled again, from another hub whose host published
    since, feeds the same viewer, with no new offer from it."""
    origin, edge, edge_paused = hubs
    wire = Wire(origin)
    publisher = Publisher("vp8")
    await publisher.start(whip(origin))
    await until(lambda: origin.can_play(SHOW), "the origin never got the publisher's media")
    viewer = Viewer()
    later = started(HubTimings(connect_timeout=60.0, silence_timeout=60.0, pause_after=5.0))
    await later.start()
    moved = Publisher("vp8")
    try:
        await viewer.start(edge_play(edge, wire))
        await viewer.wait_frames(20, timeout=DEADLINE)
        await publisher.close()
        await until(lambda: SHOW in edge.orphaned(), "the silent pull was never ended")
        assert edge.stats.viewers == 1 and edge.stats.pulls == 0
        assert wire.ended, "the silent pull's session at the origin was not ended"

        await moved.start(whip(later))
        await until(lambda: later.can_play(SHOW), "the second hub never got media")
        again = Wire(later)
        before = viewer.matching
        await edge.pull(SHOW, again.signal, again.hang_up)
        await viewer.wait_frames(before + 20, timeout=DEADLINE)
        assert SHOW not in edge.orphaned() and later.stats.viewers == 1
        assert decode_failures == []
        assert edge_paused == []  # the edge never announced the host's absence
    finally:
        await viewer.close()
        await moved.close()
        await later.aclose()


async def test_a_host_publishing_to_the_edge_replaces_its_pull(
    hubs: tuple[MediaHub, MediaHub, list[object]],
) -> None:
    """The host comes to the edge's node: its publisher replaces the pull (ended at the origin)
    and the edge now announces the show's pauses itself."""
    origin, edge, edge_paused = hubs
    wire = Wire(origin)
    first, second = Publisher("vp8"), Publisher("vp8")
    viewer = Viewer()
    try:
        await first.start(whip(origin))
        await until(lambda: origin.can_play(SHOW), "the origin never got the publisher's media")
        await viewer.start(edge_play(edge, wire))
        await viewer.wait_frames(10, timeout=DEADLINE)
        await second.start(whip(edge))
        assert edge.stats.pulls == 0 and edge.stats.publishers == 1
        await until(lambda: origin.stats.viewers == 0, "the replaced pull stayed at the origin")
        before = viewer.matching
        await viewer.wait_frames(before + 10, timeout=DEADLINE)
        assert not edge.broadcasts[SHOW].pulled
        await second.close()
        await until(lambda: edge_paused == [(SHOW, True)], "the edge did not announce the pause")
    finally:
        await viewer.close()
        await first.close()
        await second.close()
