"""``livesale serve --workers 2``: two processes on one port sharing the embedded Redis and the
data store, each with its own relay. Each worker is reached on purpose through its own unix
socket (``DATA_DIR/run/worker-N.sock``, which answers like the port), so the test says which
worker a client lands on instead of leaving it to the kernel."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess
from tests.media.peers import Publisher, Viewer

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

#: Generous: two workers start and negotiate WebRTC on a machine whose cores may be busy.
DEADLINE = 120.0


class Workers:
    """A ``serve --workers 2`` run, with a client for each worker's own socket."""

    def __init__(self, server: ServerProcess, data_dir: Path) -> None:
        self.server = server
        self.data_dir = data_dir
        self.key = (data_dir / "cli-key").read_text().strip()

    def socket(self, worker: int) -> Path:
        return self.data_dir / "run" / f"worker-{worker}.sock"

    def client(self, worker: int, **headers: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket(worker)))
        return httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers, timeout=60
        )

    def merchant(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        )

    async def room(self, worker: int, show_id: str, token: str) -> Any:
        """A room socket on ``worker``, past its snapshot."""
        ws = await websockets.unix_connect(
            str(self.socket(worker)), f"ws://localhost/ws/shows/{show_id}?token={token}"
        )
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert snapshot["type"] == "snapshot", snapshot
        return ws

    def stop(self, sig: int) -> None:
        """Signal the supervisor: it ends with 0, and no worker is left."""
        assert self.server.proc is not None
        if self.server.proc.poll() is not None:
            return
        pids = self.pids()
        assert self.server.stop(sig) == 0, self.server.output()
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], self.server.output()

    def pids(self) -> list[int]:
        """The worker processes' ids (the supervisor's children that serve)."""
        assert self.server.proc is not None
        children = Path(f"/proc/{self.server.proc.pid}/task/{self.server.proc.pid}/children")
        found = []
        for pid in children.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(pid))
        return found


@pytest.fixture
def workers(spawn: Any, tmp_path: Path) -> Iterator[Workers]:
    data_dir = tmp_path / "data"
    server = spawn(
        "--workers",
        "2",
        "--data-dir",
        str(data_dir),
        "--ice-host",
        "127.0.0.1",
        "--payments",
        "test",
        wait=False,
    )
    server.wait_healthy(timeout=DEADLINE)
    run = Workers(server, data_dir)
    deadline = time.monotonic() + DEADLINE
    while not all(run.socket(n).exists() for n in (0, 1)):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    yield run
    # SIGTERM to the supervisor stops every worker gracefully, then itself with 0.
    run.stop(signal.SIGTERM)


def make_show(run: Workers) -> tuple[str, str]:
    """A live show with two items; its id and host token."""
    with run.merchant() as merchant:
        for sku in ("LIP-1", "EYE-2"):
            product = {
                "sku": sku,
                "title": f"Item {sku}",
                "price": {"amount": 990, "currency": "EUR"},
                "stock": 5,
            }
            assert merchant.post("/api/products", json=product).status_code == 201
        show = merchant.post("/api/shows", json={"title": "Two cores", "host_name": "Mia"})
        created = show.json()
        lineup = [{"sku": "LIP-1"}, {"sku": "EYE-2"}]
        assert merchant.put(f"/api/shows/{created['id']}/lineup", json=lineup).status_code == 200
        assert merchant.post(f"/api/shows/{created['id']}/start").status_code == 200
    return created["id"], created["host_token"]


async def test_a_feature_on_one_worker_reaches_the_room_of_the_other(workers: Workers) -> None:
    """The host on worker 0, a viewer on worker 1: the feature, and a hold taken on worker 1,
    reach both; a worker killed is started again and serves."""
    show_id, host_token = make_show(workers)
    async with workers.client(1) as one:
        made = await one.post("/api/viewers", json={"nickname": "ada"})
        assert made.status_code == 201, made.text
        viewer = made.json()
    host = await workers.room(0, show_id, host_token)
    ada = await workers.room(1, show_id, viewer["token"])
    try:
        await host.send(json.dumps({"type": "feature", "sku": "EYE-2"}))
        for ws in (host, ada):
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), DEADLINE)))[
                "type"
            ] != "featured":
                pass
            assert frame["sku"] == "EYE-2"
        async with workers.client(1, Authorization=f"Bearer {viewer['token']}") as one:
            hold = await one.post(
                f"/api/shows/{show_id}/holds",
                json={"sku": "EYE-2", "qty": 1, "idempotency_key": "k1"},
            )
        assert hold.status_code == 201, hold.text
        while (frame := json.loads(await asyncio.wait_for(host.recv(), DEADLINE)))[
            "type"
        ] != "stock":
            pass
        levels = {item["sku"]: item["available"] for item in frame["items"]}
        assert levels["EYE-2"] == 4
    finally:
        await host.close()
        await ada.close()

    before = workers.pids()
    assert len(before) == 2
    os.kill(before[1], signal.SIGKILL)
    deadline = time.monotonic() + DEADLINE
    while True:
        now = workers.pids()
        if len(now) == 2 and before[1] not in now:
            break
        assert time.monotonic() < deadline, workers.server.output()
        await asyncio.sleep(0.2)
    for worker in (0, 1):
        while True:
            try:
                async with workers.client(worker) as client:
                    if (await client.get("/healthz")).status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, workers.server.output()
            await asyncio.sleep(0.2)
    assert "starting it again" in workers.server.output()

    # A scrape on either worker answers for both, each sample with its worker.
    async with workers.client(1) as one:
        scraped = await one.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    routes = [
        line
        for line in scraped.text.splitlines()
        if line.startswith("livesale_http_requests_total{") and 'route="/healthz"' in line
    ]
    assert any('worker="0"' in line for line in routes), routes
    assert any('worker="1"' in line for line in routes), routes
    assert scraped.text.count("# TYPE livesale_http_requests_total counter") <= 1
    # Ctrl-C reaches the supervisor alone (the workers have their own process group), which
    # stops them all.
    workers.stop(signal.SIGINT)


async def test_a_viewer_on_the_other_worker_gets_the_video(
    workers: Workers, loopback_ice: None
) -> None:
    """WHIP on worker 0, WHEP on worker 1: worker 1 forwards the offer to the show's origin,
    whose answer carries its own candidates, and the viewer decodes the publisher's picture.
    The viewer's DELETE on worker 1 ends the session held by worker 0. A feature pressed on
    worker 1 is a chapter of the replay that worker 0 recorded."""
    show_id, host_token = make_show(workers)
    publisher, viewer = Publisher("h264"), Viewer()
    try:
        async with workers.client(0, Authorization=f"Bearer {host_token}") as zero:

            async def publish(offer: str) -> str:
                answer = await zero.post(
                    f"/whip/{show_id}", content=offer, headers={"Content-Type": "application/sdp"}
                )
                assert answer.status_code == 201, answer.text
                assert answer.headers["location"].startswith(f"/whip/{show_id}/w0.")
                return answer.text

            await publisher.start(publish)
        location = ""
        async with workers.client(1) as one:

            async def play(offer: str) -> str:
                nonlocal location
                answer = await one.post(
                    f"/whep/{show_id}", content=offer, headers={"Content-Type": "application/sdp"}
                )
                assert answer.status_code == 201, answer.text
                location = answer.headers["location"]
                return answer.text

            deadline = time.monotonic() + DEADLINE
            while True:
                try:
                    await viewer.start(play)
                    break
                except AssertionError:
                    # 409 until the publisher's first media reaches the origin's relay.
                    assert time.monotonic() < deadline
                    await viewer.close()
                    viewer = Viewer()
                    await asyncio.sleep(0.5)
            # The session is the origin's: worker 0 holds it, and worker 1 only forwarded.
            assert location.startswith(f"/whep/{show_id}/w0."), location
            await viewer.wait_frames(10, DEADLINE)
            ended = await one.delete(location)
            assert ended.status_code == 200, ended.text
            gone = await one.delete(location)
            assert gone.status_code == 404, gone.text

        # The host features an item through worker 1; the recording, on worker 0, marks it.
        host = await workers.room(1, show_id, host_token)
        try:
            await asyncio.sleep(2)
            await host.send(json.dumps({"type": "feature", "sku": "EYE-2"}))
            while json.loads(await asyncio.wait_for(host.recv(), DEADLINE))["type"] != "featured":
                pass
            await asyncio.sleep(3)
        finally:
            await host.close()
        with workers.merchant() as merchant:
            assert merchant.post(f"/api/shows/{show_id}/end").status_code == 200
            deadline = time.monotonic() + DEADLINE
            while (replay := merchant.get(f"/api/shows/{show_id}/replay")).status_code == 404:
                assert time.monotonic() < deadline, workers.server.output()
                await asyncio.sleep(0.5)
        assert replay.status_code == 200, replay.text
        chapters = replay.json()["chapters"]
        assert [c["sku"] for c in chapters] == ["EYE-2"], chapters
        assert chapters[0]["start_s"] >= 1.0
    finally:
        await viewer.close()
        await publisher.close()
