"""A show's video on every node: two livesale nodes (``--node-url`` each, a data directory of
their own) share PostgreSQL and Redis behind nginx (``deploy/nginx/livesale.conf``, one
``server`` line per node). The host publishes to one node; a viewer of the other gets the show
from that node, which pulls it once from the first over WHEP, whichever number of viewers it
has; players through nginx land on either and decode the picture; the HLS the origin records,
and the merchant's view of it, reach them through nginx whichever node it asks first; a
player's ``DELETE`` sent to the wrong node ends its session; and when the pulling node is killed its
viewers reconnect through nginx and watch on."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from livesale.media.origin import node_tag
from tests.conftest import ServerProcess, create_key, free_port
from tests.media.peers import Publisher, Viewer
from tests.media.test_cdn import files
from tests.nginx import Nginx, balancing
from tests.postgres import Cluster

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]

#: Catches a hang only: two nodes negotiate WebRTC on a machine whose cores may be busy.
DEADLINE = 120.0
SDP = {"Content-Type": "application/sdp"}


@pytest.fixture
def database(postgres_cluster: Cluster) -> Iterator[str]:
    url = postgres_cluster.database()
    yield url
    postgres_cluster.drop(url)


@pytest.fixture
def nodes(
    spawn: Any, tmp_path: Path, database: str, redis_url: str, request: pytest.FixtureRequest
) -> list[ServerProcess]:
    """Two nodes; the second runs as many workers as the test's parameter says (one)."""
    started = []
    for n, workers in enumerate((1, getattr(request, "param", 1))):
        port = free_port()
        started.append(
            spawn(
                *("--data-dir", str(tmp_path / f"node-{n}"), "--node-url"),
                f"http://127.0.0.1:{port}",
                *("--database-url", database, "--redis-url", redis_url),
                *("--ice-host", "127.0.0.1", "--trust-proxy", "127.0.0.1/32"),
                *("--payments", "test", "--log-level", "info", "--workers", str(workers)),
                port=port,
                wait=workers == 1,
            )
        )
        if workers > 1:
            started[-1].wait_healthy(timeout=DEADLINE)
            sockets = [tmp_path / f"node-{n}" / "run" / f"worker-{w}.sock" for w in range(workers)]
            deadline = time.monotonic() + DEADLINE
            while not all(path.exists() for path in sockets):
                assert time.monotonic() < deadline, started[-1].output()
                time.sleep(0.1)
    return started


@pytest.fixture
def balancer(nodes: list[ServerProcess], tmp_path: Path) -> Iterator[Nginx]:
    with balancing([n.port for n in nodes], tmp_path / "nginx") as proxy:
        yield proxy


def gauge(node: ServerProcess, name: str) -> float:
    """A gauge of ``node``, summed over its workers."""
    text = httpx.get(f"{node.url}/metrics", timeout=30).text
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not among the node's metrics"
    return sum(float(value) for value in found)


def live_show(balancer: Nginx, key: str) -> dict[str, Any]:
    """A live show made through nginx with the merchant's ``key``: its id and host token."""
    with httpx.Client(
        base_url=balancer.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as merchant:
        show: dict[str, Any] = merchant.post(
            "/api/shows", json={"title": "Nodes", "host_name": "Mia"}
        ).json()
        assert merchant.post(f"/api/shows/{show['id']}/start").status_code == 200
    return show


async def publish_to(node: ServerProcess, show: dict[str, Any], publisher: Publisher) -> None:
    """``publisher``'s WHIP straight to ``node``, with the show's host token."""
    async with httpx.AsyncClient(base_url=node.url, timeout=DEADLINE) as host:

        async def publish(offer: str) -> str:
            answer = await host.post(
                f"/whip/{show['id']}",
                content=offer,
                headers={**SDP, "Authorization": f"Bearer {show['host_token']}"},
            )
            assert answer.status_code == 201, answer.text
            return answer.text

        await publisher.start(publish)


async def watch(base: str, show_id: str, uds: Path | None = None) -> tuple[Viewer, str]:
    """A WHEP player of ``show_id`` through ``base`` (or a worker's socket ``uds``), past its
    answer: it and its session URL. (A 409 is the show with no media on that node yet: a
    player tries again.)"""
    deadline = time.monotonic() + DEADLINE
    transport = httpx.AsyncHTTPTransport(uds=str(uds)) if uds is not None else None
    async with httpx.AsyncClient(base_url=base, timeout=DEADLINE, transport=transport) as client:
        while True:
            viewer, location = Viewer(), ""

            async def play(offer: str) -> str:
                nonlocal location
                answer = await client.post(f"/whep/{show_id}", content=offer, headers=SDP)
                assert answer.status_code == 201, (answer.status_code, answer.text)
                location = answer.headers["location"]
                return answer.text

            try:
                await viewer.start(play)
                return viewer, location
            except AssertionError as exc:
                await viewer.close()
                assert time.monotonic() < deadline and "409" in str(exc), exc
                await asyncio.sleep(0.5)


def test_a_show_published_to_one_node_plays_on_every_node(
    nodes: list[ServerProcess], balancer: Nginx, database: str, loopback_ice: None
) -> None:
    origin, edge = nodes
    key = create_key(database)
    show = live_show(balancer, key)
    show_id = show["id"]

    async def scenario() -> None:
        publisher = Publisher("h264")
        viewers: list[Viewer] = []
        try:
            await publish_to(origin, show, publisher)
            # Four viewers of the other node: it pulls the show once, as one player.
            locations = []
            for _ in range(4):
                viewer, location = await watch(edge.url, show_id)
                viewers.append(viewer)
                locations.append(location)
                assert location.startswith(f"/whep/{show_id}/"), location
            await asyncio.gather(*(v.wait_frames(15, DEADLINE) for v in viewers))
            assert gauge(edge, "livesale_media_pulls") == 1
            assert gauge(edge, "livesale_media_viewers") == 4
            assert gauge(origin, "livesale_media_viewers") == 1  # the pull
            assert gauge(origin, "livesale_media_publishers") == 1
            # A player's DELETE that the balancer sends to the other node ends the session
            # on its own node, once.
            async with httpx.AsyncClient(base_url=origin.url, timeout=DEADLINE) as other:
                assert (await other.delete(locations[0])).status_code == 200
                assert (await other.delete(locations[0])).status_code == 404
            assert gauge(edge, "livesale_media_viewers") == 3

            # Players through nginx land on both nodes; each decodes the picture.
            through = [await watch(balancer.url, show_id) for _ in range(4)]
            await asyncio.gather(*(v.wait_frames(15, DEADLINE) for v, _ in through))
            viewers += [v for v, _ in through]
            assert gauge(edge, "livesale_media_pulls") == 1
            assert (
                gauge(origin, "livesale_media_viewers") + gauge(edge, "livesale_media_viewers")
                == 1 + 3 + 4
            )
            assert {line[4] for line in balancer.log() if line[0] == "POST"} >= {
                f"127.0.0.1:{n.port}" for n in nodes
            }, balancer.log()

            # The origin records the show; its HLS reaches players through nginx whichever
            # node nginx asks first (one without the file passes the request to the next).
            async with httpx.AsyncClient(base_url=balancer.url, timeout=DEADLINE) as hls:
                deadline = time.monotonic() + DEADLINE
                while True:
                    playlist = await hls.get(f"/hls/{show_id}/index.m3u8")
                    if playlist.status_code == 200 and len(files(playlist.text)) >= 4:
                        break
                    assert time.monotonic() < deadline, "the origin wrote no live playlist"
                    await asyncio.sleep(0.5)
                for name in files(playlist.text):  # each asked once: nginx has none cached
                    got = await hls.get(f"/hls/{show_id}/{name}")
                    assert got.status_code == 200 and got.content, (name, got.status_code)
                # The merchant's view of the recording, through nginx, from either node.
                for _ in range(4):
                    info = await hls.get(
                        f"/api/shows/{show_id}/recording",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert info.status_code == 200 and info.json()["segments"] >= 1, info.text

            # The pulling node dies: its viewers reconnect through nginx, which leaves it out,
            # and watch on from the origin.
            edge.stop(signal.SIGKILL)
            again = [await watch(balancer.url, show_id) for _ in range(3)]
            viewers += [v for v, _ in again]
            await asyncio.gather(*(v.wait_frames(15, DEADLINE) for v, _ in again))
            assert gauge(origin, "livesale_media_viewers") >= 3
        finally:
            for viewer in viewers:
                await viewer.close()
            await publisher.close()

    asyncio.run(scenario())


def test_a_host_who_publishes_again_to_another_node_moves_the_show_there(
    nodes: list[ServerProcess], balancer: Nginx, database: str, loopback_ice: None
) -> None:
    """The host's studio publishes again, and lands on the other node (as after a reconnect
    through nginx): that node is the show's origin now, its viewer resumes on the host's feed,
    and the first node ends its publisher and pulls the show for its own viewer, who resumes
    with no new offer."""
    first, second = nodes
    key = create_key(database)
    show = live_show(balancer, key)
    show_id = show["id"]

    async def scenario() -> None:
        before, after = Publisher("vp8"), Publisher("vp8")
        viewers: list[Viewer] = []
        try:
            await publish_to(first, show, before)
            for node in nodes:
                viewers.append((await watch(node.url, show_id))[0])
            await asyncio.gather(*(v.wait_frames(10, DEADLINE) for v in viewers))
            assert gauge(second, "livesale_media_pulls") == 1

            await before.close()
            seen = [v.matching for v in viewers]
            await publish_to(second, show, after)
            await asyncio.gather(
                *(v.wait_frames(n + 10, DEADLINE) for v, n in zip(viewers, seen, strict=True))
            )
            assert gauge(second, "livesale_media_publishers") == 1
            assert gauge(second, "livesale_media_pulls") == 0
            assert gauge(first, "livesale_media_publishers") == 0
            assert gauge(first, "livesale_media_pulls") == 1
        finally:
            for viewer in viewers:
                await viewer.close()
            await before.close()
            await after.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("nodes", [2], indirect=True)
def test_a_node_of_two_workers_pulls_the_show_once(
    nodes: list[ServerProcess], balancer: Nginx, database: str, loopback_ice: None, tmp_path: Path
) -> None:
    """Viewers on both workers of the other node: one worker pulls the show, the other passes
    its viewers' offers to it, so the node is one player of the origin."""
    origin, edge = nodes
    show = live_show(balancer, create_key(database))
    run = tmp_path / "node-1" / "run"

    async def scenario() -> None:
        publisher = Publisher("vp8")
        viewers: list[Viewer] = []
        try:
            await publish_to(origin, show, publisher)
            locations = []
            for worker in (1, 0, 1, 0):
                viewer, location = await watch(
                    "http://localhost", show["id"], run / f"worker-{worker}.sock"
                )
                viewers.append(viewer)
                locations.append(location)
            await asyncio.gather(*(v.wait_frames(10, DEADLINE) for v in viewers))
            # Every session is the pulling worker's: the first asked, worker 1.
            prefix = f"/whep/{show['id']}/{node_tag(f'http://127.0.0.1:{edge.port}')}.w1."
            assert all(location.startswith(prefix) for location in locations), locations
            assert gauge(edge, "livesale_media_pulls") == 1
            assert gauge(edge, "livesale_media_viewers") == 4
            assert gauge(origin, "livesale_media_viewers") == 1
        finally:
            for viewer in viewers:
                await viewer.close()
            await publisher.close()

    asyncio.run(scenario())
