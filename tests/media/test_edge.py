"""The WHIP/WHEP edge against hostile clients, on a real server with real aiortc peers."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest

from livesale.config import Settings
from livesale.media.offers import MAX_REMOTE_CANDIDATES
from tests.conftest import LiveServer
from tests.media.peers import Publisher, Viewer
from tests.media.test_routes import (
    DEADLINE,
    SDP,
    TINY_OFFER,
    LiveShow,
    make_show,
    media_hub,
    signal,
)

CORS = ("access-control-allow-origin", "access-control-expose-headers")


@pytest.fixture
def settings(tmp_path, redis_url: str) -> Settings:  # type: ignore[no-untyped-def]
    """The server offers 127.0.0.1 as its only ICE candidate. These tests send many offers
    from one address; the offer rate limit is tested on its own (tests/test_limits.py)."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        ice_hosts=("127.0.0.1",),
        rate_limits=(("offer", 1_000_000, 1.0),),
    )


@pytest.fixture
def capped_server(settings: Settings) -> Iterator[LiveServer]:
    """A server allowing two WHEP sessions per client address."""
    server = LiveServer(replace(settings, whep_sessions_per_address=2)).start()
    yield server
    server.stop()


TURN_USER = 'shop"floor,1;\\x'
TURN_PASS = '"; rel="next'


@pytest.fixture
def turn_server(settings: Settings) -> Iterator[LiveServer]:
    """A server announcing a STUN and a TURN server (on loopback) whose credentials hold
    every character that could break a Link header."""
    ice = replace(
        settings,
        stun_urls=("stun:127.0.0.1:3478",),
        turn_urls=("turn:127.0.0.1:3478",),
        turn_username=TURN_USER,
        turn_password=TURN_PASS,
    )
    server = LiveServer(ice).start()
    yield server
    server.stop()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """Every record livesale and uvicorn log while the test runs (uvicorn does not propagate)."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert response.json()["status"] == status
    for name in CORS:
        assert name in response.headers, (status, response.request.method, response.headers)


async def offer_of(peer: Publisher | Viewer) -> str:
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    return str(peer.pc.localDescription.sdp)


@asynccontextmanager
async def publishing(
    server: LiveServer, show: LiveShow
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    """A connected WHIP publisher for ``show``; yields a client and the WHIP response."""
    publisher = Publisher("vp8")
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
        try:
            yield client, responses[0]
        finally:
            await publisher.close()


def malformed_offers(good: str) -> list[str]:
    """Offers no server should answer: garbage, truncated, wrong sections, broken lines."""
    lines = good.split("\r\n")
    cases = [
        "hello",
        "v=0\r\nm=video x y z\r\n",
        "v=0\r\n" + "a=x\r\n" * 10_000,
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP x\r\n",
        good.replace("m=audio", "m=video"),
        good.replace("a=fingerprint:", "a=fingerprint-gone:"),
        good.replace("a=ice-ufrag:", "a=ice-ufrag-gone:"),
        good.replace("a=rtcp-mux\r\n", ""),
        good.replace("a=candidate:", "a=candidate:1"),
        good.replace("a=setup:", "a=setup:nonsense"),
    ]
    cases += ["\r\n".join(lines[:cut]) for cut in range(2, len(lines), 3)]
    return cases


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_malformed_offers_are_400_problems_without_a_trace(
    loopback_ice: None, server: LiveServer, server_log: list[logging.LogRecord]
) -> None:
    """Garbage, truncated or inconsistent offers on WHIP and WHEP are 4xx problems (never a
    500) and log no traceback; the relay holds no peer connection for them."""
    show = make_show(server)
    async with publishing(server, show) as (client, _):
        hub = media_hub(server)
        peers = {"whep": Viewer(), "whip": Publisher("vp8")}
        for kind, headers in (("whep", {}), ("whip", show.host)):
            good = await offer_of(peers[kind])
            for offer in malformed_offers(good):
                response = await client.post(
                    f"/{kind}/{show.id}", content=offer, headers={**SDP, **headers}
                )
                if response.status_code == 201:
                    # A cut that leaves a complete offer (e.g. after the last line).
                    await client.delete(response.headers["location"], headers=headers)
                    continue
                assert_problem(response, response.status_code)
                assert response.status_code in (400, 422), (kind, offer[-200:], response.text)
            for size in (70_000, 2_000_000):
                big = await client.post(
                    f"/{kind}/{show.id}",
                    content=b"v=0\r\n" + b"a" * size,
                    headers={**SDP, **headers},
                )
                assert_problem(big, 413)
        for peer in peers.values():
            await peer.close()
        assert hub.peer_connections == len(hub.sessions), "a refused offer left its connection"
    traced = [r for r in server_log if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert traced == [], [r.getMessage() for r in traced]
    assert not [r for r in server_log if "crashed" in r.getMessage()]


def test_every_refusal_carries_cors_headers(server: LiveServer) -> None:
    """401, 403, 404, 405, 409, 413, 415 and 422 from WHIP/WHEP carry the CORS headers."""
    live = make_show(server)
    scheduled = make_show(server, live=False)
    fingerprint = f"a=setup:actpass\r\na=fingerprint:sha-256 {'AB:' * 31}AB\r\n"
    av1 = TINY_OFFER.replace("VP8/90000", "AV1/90000") + fingerprint
    with server.client() as http:
        cases = [
            (http.post(f"/whip/{live.id}", content=TINY_OFFER, headers=SDP), 401),
            (
                http.post(
                    f"/whip/{live.id}", content=TINY_OFFER, headers={**SDP, **scheduled.host}
                ),
                403,
            ),
            (http.post("/whip/nosuch", content=TINY_OFFER, headers={**SDP, **live.host}), 404),
            (http.post(f"/whep/{live.id}", content=TINY_OFFER), 415),
            (http.post(f"/whip/{live.id}", content=av1, headers={**SDP, **live.host}), 422),
            (http.post(f"/whep/{scheduled.id}", content=TINY_OFFER, headers=SDP), 409),
            (http.post(f"/whep/{live.id}", content=b"v" * 2_000_000, headers=SDP), 413),
            (http.get(f"/whip/{live.id}"), 405),
            (http.put(f"/whep/{live.id}"), 405),
            (http.get(f"/whep/{live.id}/abc"), 405),
            (http.post(f"/whip/{live.id}/abc"), 405),
            (http.patch(f"/whep/{live.id}/abc"), 405),
            (http.delete(f"/whep/{live.id}/abc"), 404),
            (http.delete(f"/whip/{live.id}/abc"), 401),
            (http.get(f"/whep/{live.id}/abc/def"), 404),
        ]
        for response, status in cases:
            assert_problem(response, status)
            if status == 405:
                assert response.headers["allow"], response.request.url
        openapi = http.get("/api/openapi.json").json()
        assert set(openapi["paths"]["/whip/{show_id}"]) == {"post", "options"}


def test_not_live_409_carries_retry_after(server: LiveServer) -> None:
    """WHEP's 409s for a show not live, or live with no publisher yet, say when to retry."""
    live = make_show(server)
    scheduled = make_show(server, live=False)
    with server.client() as http:
        for show in (scheduled, live):
            response = http.post(f"/whep/{show.id}", content=TINY_OFFER, headers=SDP)
            assert_problem(response, 409)
            assert int(response.headers["retry-after"]) > 0


def _stun_binding_request(data: bytes) -> bool:
    # RFC 8489 §5: type 0x0001 (Binding request), magic cookie 0x2112A442.
    return len(data) >= 20 and struct.unpack("!HHI", data[:8])[::2] == (0x0001, 0x2112A442)


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_an_offer_listing_300_candidates_gets_stun_to_at_most_the_cap(
    loopback_ice: None, server: LiveServer
) -> None:
    """A WHEP offer naming 300 candidate ports makes the relay check at most
    MAX_REMOTE_CANDIDATES of them, not 300: the server is no packet cannon."""
    show = make_show(server)
    targets = []
    for _ in range(300):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        targets.append(sock)
    hit: set[int] = set()

    def drain() -> None:
        for sock in targets:
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                if _stun_binding_request(data):
                    hit.add(sock.getsockname()[1])

    try:
        async with publishing(server, show) as (client, _):
            hub = media_hub(server)
            viewer = Viewer()
            offer = await offer_of(viewer)
            await viewer.close()
            candidates = "".join(
                f"a=candidate:{k} 1 udp {2_000_000_000 - k} 127.0.0.1 "
                f"{sock.getsockname()[1]} typ host\r\n"
                for k, sock in enumerate(targets)
            )
            kept = [line for line in offer.split("\r\n") if not line.startswith("a=candidate:")]
            mid = next(i for i, line in enumerate(kept) if line.startswith("a=mid:")) + 1
            crafted = "\r\n".join(kept[:mid]) + "\r\n" + candidates + "\r\n".join(kept[mid:])
            response = await client.post(f"/whep/{show.id}", content=crafted, headers=SDP)
            assert response.status_code == 201, response.text
            # Nobody answers: the viewer's ICE fails (or times out) and the relay closes it.
            deadline = time.monotonic() + DEADLINE
            while any(s.role == "viewer" for s in hub.sessions.values()):
                assert time.monotonic() < deadline, "the viewer session never closed"
                drain()
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            drain()
    finally:
        for sock in targets:
            sock.close()
    assert 1 <= len(hit) <= MAX_REMOTE_CANDIDATES, len(hit)


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_whep_sessions_per_address_are_capped_with_429(
    loopback_ice: None, capped_server: LiveServer
) -> None:
    """Over whep_sessions_per_address from one address: 429 with Retry-After; another
    address still plays, and an ended session frees its slot."""
    server = capped_server
    show = make_show(server)
    async with publishing(server, show) as (client, _):
        viewer = Viewer()
        offer = await offer_of(viewer)
        await viewer.close()
        url = f"/whep/{show.id}"
        first = await client.post(url, content=offer, headers=SDP)
        second = await client.post(url, content=offer, headers=SDP)
        assert (first.status_code, second.status_code) == (201, 201)
        third = await client.post(url, content=offer, headers=SDP)
        assert_problem(third, 429)
        assert third.json()["type"].endswith("too-many-viewers")
        assert int(third.headers["retry-after"]) > 0
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=server.url, transport=other, timeout=60) as c2:
            assert (await c2.post(url, content=offer, headers=SDP)).status_code == 201
        assert (await client.delete(first.headers["location"])).status_code == 200
        again = await client.post(url, content=offer, headers=SDP)
        assert again.status_code == 201, again.text


def _link_values(header: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a Link header (RFC 8288 §3) into ``(target, parameters)`` pairs."""
    token = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
    quoted = r'"((?:[^"\\]|\\.)*)"'
    param = re.compile(rf"\s*;\s*({token})\s*=\s*(?:{quoted}|({token}))")
    links, at = [], 0
    while at < len(header):
        match = re.compile(r"\s*<([^>]*)>").match(header, at)
        assert match, header[at:]
        target, params, at = match.group(1), {}, match.end()
        while found := param.match(header, at):
            raw = found.group(2)
            value = re.sub(r"\\(.)", r"\1", raw) if raw is not None else found.group(3)
            params[found.group(1)] = value
            at = found.end()
        links.append((target, params))
        rest = re.compile(r"\s*(,|$)").match(header, at)
        assert rest, header[at:]
        at = rest.end()
    return links


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_answers_link_headers_and_ending_a_publication(
    loopback_ice: None, turn_server: LiveServer
) -> None:
    """Answers carry a=rtcp-mux-only in every media section; Link values are quoted-strings a
    TURN credential cannot break; DELETE of a WHIP session needs the show's host token."""
    server = turn_server
    show = make_show(server)
    other = make_show(server)
    async with publishing(server, show) as (client, published):
        viewer = Viewer()
        watched = await client.post(f"/whep/{show.id}", content=await offer_of(viewer), headers=SDP)
        await viewer.close()
        assert watched.status_code == 201, watched.text
        for response in (published, watched):
            sections = response.text.split("\r\nm=")[1:]
            assert len(sections) == 2
            for section in sections:
                assert "\r\na=rtcp-mux-only\r\n" in f"\r\n{section}", section
            assert response.headers["link"] == (
                '<stun:127.0.0.1:3478>; rel="ice-server", '
                '<turn:127.0.0.1:3478>; rel="ice-server"; '
                'username="shop\\"floor,1;\\\\x"; credential="\\"; rel=\\"next"; '
                'credential-type="password"'
            )
            assert _link_values(response.headers["link"]) == [
                ("stun:127.0.0.1:3478", {"rel": "ice-server"}),
                (
                    "turn:127.0.0.1:3478",
                    {
                        "rel": "ice-server",
                        "username": TURN_USER,
                        "credential": TURN_PASS,
                        "credential-type": "password",
                    },
                ),
            ]
        location = published.headers["location"]
        assert_problem(await client.delete(location), 401)
        assert_problem(await client.delete(location, headers=other.host), 403)
        assert media_hub(server).session(location.rsplit("/", 1)[1]) is not None
        assert (await client.delete(location, headers=show.host)).status_code == 200
        # A viewer ends its own session with its unguessable URL alone.
        assert_problem(await client.delete(f"/whep/{show.id}/not-the-session"), 404)
        assert (await client.delete(watched.headers["location"])).status_code == 200
