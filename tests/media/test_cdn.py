"""nginx as the CDN in front of a live, recorded show: ``deploy/nginx/livesale.conf`` as the
operator installs it, a real livesale behind it, 200 HLS players through it.

The show is live from a real WHIP publisher (aiortc, H.264 and Opus) that signals through
nginx, so what the players read is the real live path: the relay hands frames to the server's
own recorder, which writes segments and rewrites the live playlist while nginx caches them.
(Feeding a recorder from the test would leave the relay, the server's recorder and the show's
state out.) The players are asyncio and httpx in a process of their own, each polling the
live playlist about once a second and fetching every file it lists, as hls.js does. WebRTC
runs in a loopback-only network namespace (the ``netns`` marker), nginx and every HTTP client
in it too, so nothing leaves 127.0.0.0/8.

The origin's accesses are counted at the origin: uvicorn writes a line to its ``uvicorn.access``
logger for every response it starts, once that logger has a handler when a connection opens
(livesale's server leaves it without one), so the test gives it one before nginx connects.
nginx's own log (with ``$upstream_cache_status``, subrequests included) is printed beside it
as a cross-check. The figures are in the assertion's message, and printed: the test runs
itself inside ``unshare -n``, so to see them on a pass run pytest with ``-s`` in one
(``unshare -n sh -c 'ip link set lo up && python -m pytest -s tests/media/test_cdn.py'``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import ssl
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets

from livesale.config import Settings
from livesale.media.recording import LIVE, read_playlist
from tests.conftest import LiveServer
from tests.media.conftest import ROOT
from tests.media.peers import Publisher
from tests.media.test_routes import make_show, signal
from tests.nginx import Nginx, nginx_path

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

#: Players reading the live show through nginx at once.
PLAYERS = 200
#: Seconds they watch at least, and new segments they see appear at least (a busy machine's
#: publisher sends fewer frames a second, so its segments come slower).
WATCH = 18.0
NEW_SEGMENTS = 5
#: A player polls the live playlist about this often (hls.js: about once a target duration;
#: the origin caches it for a second).
POLL = 1.0
#: Origin fetches allowed per segment and per init segment (one, and one more should a wait
#: for the cache lock run out on a busy machine).
MAX_ORIGIN_FETCHES = 2
#: Deadline for anything the server or nginx must do: it only catches a hang.
DEADLINE = 180.0


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """The relay tests' server (127.0.0.1 its only ICE candidate), trusting the proxy on
    loopback as ``deploy/README.md`` tells an operator to."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        ice_hosts=("127.0.0.1",),
        payments=("test", "manual"),
        trust_proxy=("127.0.0.1/32",),
    )


class OriginLog(logging.Handler):
    """Every response the origin starts: (method, path, status)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[tuple[str, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # uvicorn's access line: '%s - "%s %s HTTP/%s" %d' (client, method, path, version,
        # status).
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            self.requests.append((str(args[1]), str(args[2]), int(str(args[4]))))


@pytest.fixture
def origin_log(server: LiveServer) -> Iterator[OriginLog]:
    """What the running ``server`` answers from now on (connections opened from now on)."""
    logger = logging.getLogger("uvicorn.access")
    level = logger.level
    handler = OriginLog()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def cdn(server: LiveServer, origin_log: OriginLog, tmp_path: Path) -> Iterator[Nginx]:
    """nginx with ``deploy/nginx/livesale.conf`` in front of ``server``."""
    proxy = Nginx(nginx_path(), tmp_path / "nginx", [f"127.0.0.1:{server.settings.port}"])
    try:
        yield proxy.start()
    finally:
        proxy.stop()


@dataclass
class Player:
    """What one HLS player did through the CDN."""

    #: Every init segment and segment a playlist it fetched listed.
    listed: set[str] = field(default_factory=set)
    #: The SHA-256 of each file it fetched.
    got: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    cache: Counter[str] = field(default_factory=Counter)


def files(playlist: str) -> list[str]:
    """The init segments and segments ``playlist`` lists, in order."""
    names = []
    for line in playlist.splitlines():
        if line.startswith('#EXT-X-MAP:URI="'):
            names.append(line[len('#EXT-X-MAP:URI="') : -1])
        elif line and not line.startswith("#"):
            names.append(line)
    return names


async def fetch(client: httpx.AsyncClient, player: Player, path: str) -> httpx.Response:
    response = await client.get(path)
    player.requests += 1
    player.cache[response.headers.get("x-cache-status", "none")] += 1
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response


#: One TLS context for every player's client (never used over plain HTTP): httpx would build
#: one per client, tens of milliseconds each, on the event loop the players share.
TLS = ssl.create_default_context()


async def play(base: str, show_id: str, player: Player, stop: asyncio.Event, seed: int) -> None:
    """Poll the live playlist about once a second like a player, fetching the init segment
    and every segment it lists that this player has not got yet, until ``stop``."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(
        base_url=base, timeout=DEADLINE, limits=limits, verify=TLS
    ) as client:
        await asyncio.sleep(rng.random() * POLL)  # players do not start in step
        while True:
            polled = time.monotonic()
            playlist = await fetch(client, player, f"/hls/{show_id}/index.m3u8")
            for name in files(playlist.text):
                player.listed.add(name)
                if name not in player.got:
                    got = await fetch(client, player, f"/hls/{show_id}/{name}")
                    player.got[name] = hashlib.sha256(got.content).hexdigest()
            if stop.is_set():
                return
            await asyncio.sleep(max(0.0, POLL - (time.monotonic() - polled)))


async def audience(base: str, show_id: str, count: str) -> None:
    """``count`` players of ``show_id`` through ``base``, in a process of their own: says
    ``playing`` once they have started, stops them when a line comes on stdin (each finishes
    the playlist it has), then prints what each did as JSON."""
    players = [Player() for _ in range(int(count))]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(play(base, show_id, player, stop, seed))
        for seed, player in enumerate(players)
    ]
    print("playing", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    await asyncio.gather(*tasks)
    report = [
        {"listed": sorted(p.listed), "got": p.got, "requests": p.requests, "cache": p.cache}
        for p in players
    ]
    print(json.dumps(report), flush=True)


#: The players run in a process of their own, so that 200 of them on one event loop do not
#: starve the publisher's (and the server's) share of the test process on a busy machine.
AUDIENCE = (
    "import asyncio, sys; from tests.media.test_cdn import audience; "
    "asyncio.run(audience(*sys.argv[1:]))"
)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE:.0f} s"
        await asyncio.sleep(0.2)


async def test_200_players_through_nginx_cost_the_origin_each_segment_once(
    loopback_ice: None, server: LiveServer, origin_log: OriginLog, cdn: Nginx, tmp_path: Path
) -> None:
    """Through ``deploy/nginx/livesale.conf`` (WHIP, the room socket and the API through it
    too), 200 players of a live, recorded show each get every segment listed while they
    watch, byte for byte as recorded, and the origin serves each segment and init segment at
    most twice (the cache lock collapses concurrent misses) and the live playlist about once
    a second; after the end the playlist ends and the replay is cached."""
    show = make_show(server)
    recorded = server.settings.recordings_dir / show.id
    publisher = Publisher("h264")
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=cdn.url, timeout=DEADLINE) as client:
        # WHIP through nginx: the offer in, 201 with the answer and its Location out.
        await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
        (published,) = responses
        location = published.headers["location"]
        assert location.startswith(f"/whip/{show.id}/"), location
        assert published.headers["etag"]
        trickle = await client.patch(location, headers=show.host, content=b"")
        assert trickle.status_code == 405 and trickle.headers["allow"] == "DELETE, OPTIONS"

        # The room socket through nginx, from a page on nginx's own origin.
        socket_url = f"{cdn.url.replace('http', 'ws')}/ws/shows/{show.id}?token={show.host_token}"
        async with websockets.connect(socket_url, origin=websockets.Origin(cdn.url)) as ws:
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert snapshot["type"] == "snapshot" and snapshot["show"]["state"] == "live"
        assert snapshot["you"]["role"] == "host"

        async def recording() -> bool:
            live = await client.get(f"/hls/{show.id}/index.m3u8")
            return live.status_code == 200 and any(n.startswith("seg-") for n in files(live.text))

        await wait_for(recording, "segment in the live playlist through nginx")

        log = tmp_path / "audience.log"
        with open(log, "wb") as stderr:
            audience_proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                AUDIENCE,
                cdn.url,
                show.id,
                str(PLAYERS),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert audience_proc.stdout is not None
        try:
            line = await asyncio.wait_for(audience_proc.stdout.readline(), DEADLINE)
            assert line == b"playing\n", log.read_text()
            started = time.monotonic()
            watching = len(origin_log.requests)
            first = len(read_playlist((recorded / LIVE).read_text()))

            async def watched_enough() -> bool:
                assert audience_proc.returncode is None, log.read_text()
                segments = len(read_playlist((recorded / LIVE).read_text()))
                return time.monotonic() - started >= WATCH and segments >= first + NEW_SEGMENTS

            await wait_for(watched_enough, f"{NEW_SEGMENTS} new segments while the players watch")
            out, _ = await asyncio.wait_for(audience_proc.communicate(b"stop\n"), DEADLINE)
        finally:
            if audience_proc.returncode is None:
                audience_proc.kill()
                await audience_proc.wait()
        assert audience_proc.returncode == 0, log.read_text()
        players = [
            Player(set(p["listed"]), p["got"], p["requests"], Counter(p["cache"]))
            for p in json.loads(out)
        ]
        watched = time.monotonic() - started
        origin = list(origin_log.requests)
        proxy_log = cdn.log()

        # The end, through nginx: the publisher leaves, the show ends, the playlist ends
        # within a second or so of cache, and the replay is cached like a segment.
        left = await client.delete(location, headers=show.host)
        assert left.status_code == 200, left.text
        ended = await client.post(f"/api/shows/{show.id}/end", headers=server.merchant)
        assert ended.status_code == 200, ended.text
        await publisher.close()

        async def ended_list() -> bool:
            live = await client.get(f"/hls/{show.id}/index.m3u8")
            return "#EXT-X-ENDLIST" in live.text

        await wait_for(ended_list, "#EXT-X-ENDLIST in the live playlist through nginx")
        vod = [await client.get(f"/hls/{show.id}/vod.m3u8") for _ in range(2)]
        assert [v.status_code for v in vod] == [200, 200]
        assert [v.headers["x-cache-status"] for v in vod] == ["MISS", "HIT"]
        assert vod[1].text == (recorded / "vod.m3u8").read_text()

    # Every player got every file it was told of, as the recorder wrote it.
    on_disk = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in recorded.iterdir()
        if path.name.startswith(("seg-", "init-"))
    }
    for n, player in enumerate(players):
        assert player.listed and set(player.got) == player.listed, n
        wrong = [name for name, digest in player.got.items() if on_disk[name] != digest]
        assert not wrong, f"player {n} got files unlike the recording's: {wrong}"

    # What the origin served while they watched, per file.
    prefix = f"/hls/{show.id}/"
    per_file = Counter(
        path.removeprefix(prefix) for _, path, _ in origin if path.startswith(prefix)
    )
    listed = set().union(*(player.listed for player in players))
    segments = {name: per_file[name] for name in listed if name.startswith("seg-")}
    inits = {name: per_file[name] for name in listed if name.startswith("init-")}
    # The playlist while they watched (before, the wait for a first segment polled its 404s).
    playlist_fetches = sum(1 for _, path, _ in origin[watching:] if path == f"{prefix}index.m3u8")
    requests = sum(player.requests for player in players)
    cache = sum((player.cache for player in players), Counter())
    upstream = Counter(
        line[1].removeprefix(prefix)
        for line in proxy_log
        if line[1].startswith(prefix) and line[4] != "-"
    )
    figures = (
        f"{PLAYERS} players, {watched:.1f} s, {requests} requests through nginx "
        f"({', '.join(f'{k} {v}' for k, v in cache.most_common())}); origin: "
        f"{len(segments)} segments fetched max {max(segments.values())} / mean "
        f"{statistics.mean(segments.values()):.2f} times each, init segments {inits}, "
        f"live playlist {playlist_fetches} times; nginx's log: {sum(upstream.values())} "
        f"upstream fetches under {prefix} ({upstream['index.m3u8']} of the playlist)"
    )
    print(f"\nCDN: {figures}")
    assert len(segments) >= first + NEW_SEGMENTS, figures
    assert all(1 <= count <= MAX_ORIGIN_FETCHES for count in segments.values()), figures
    assert all(1 <= count <= MAX_ORIGIN_FETCHES for count in inits.values()), figures
    # A one-second playlist is fetched again about once a second, not once per player.
    assert playlist_fetches <= 2 * watched + 10, figures
