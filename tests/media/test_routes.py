"""WHIP and WHEP over HTTP against a real server (uvicorn, embedded Redis, SQLite)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from livesale import keys
from livesale.config import Settings
from livesale.media import MEDIA
from livesale.media.hub import MediaHub
from tests.conftest import LiveServer
from tests.media.peers import Publisher, Signal, Viewer

SDP = {"Content-Type": "application/sdp"}
# A syntactically valid offer with one video section, enough to reach the checks before ICE.
TINY_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
)
#: Deadline for what the relay must do: it only catches a hang, on a machine however busy.
DEADLINE = 180.0


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """The server offers 127.0.0.1 as its only ICE candidate."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        ice_hosts=("127.0.0.1",),
        payments=("test", "manual"),
    )


@dataclass
class LiveShow:
    id: str
    host_token: str

    @property
    def host(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.host_token}"}


def make_show(server: LiveServer, *, live: bool = True) -> LiveShow:
    with server.client() as http:
        created = http.post(
            "/api/shows", json={"title": "Spring drop", "host_name": "Mei"}, headers=server.merchant
        )
        assert created.status_code == 201, created.text
        body = created.json()
        if live:
            started = http.post(f"/api/shows/{body['id']}/start", headers=server.merchant)
            assert started.status_code == 200, started.text
    return LiveShow(body["id"], body["host_token"])


def media_hub(server: LiveServer) -> MediaHub:
    hub = server.app.state.services.get(MEDIA)
    assert isinstance(hub, MediaHub)
    return hub


def signal(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], into: list[httpx.Response]
) -> Signal:
    async def post(offer: str) -> str:
        response = await client.post(url, content=offer, headers={**SDP, **headers})
        into.append(response)
        assert response.status_code == 201, response.text
        return response.text

    return post


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_whip_and_whep_carry_the_show_end_to_end(
    loopback_ice: None, server: LiveServer, redis_client: redis.Redis, encoder_calls: list[str]
) -> None:
    """A WHIP publisher reaches a WHEP viewer; DELETE ends both sessions and their PCs."""
    show = make_show(server)
    room = redis_client.pubsub()
    room.subscribe(keys.show_channel(show.id))
    publisher, viewer = Publisher("vp8"), Viewer()
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
        await viewer.start(signal(client, f"/whep/{show.id}", {}, responses))
        await viewer.wait_frames(30, timeout=DEADLINE)
        published, watched = responses
        for response in responses:
            assert response.headers["content-type"].startswith("application/sdp")
            assert response.headers["access-control-allow-origin"] == "*"
            assert "Location" in response.headers["access-control-expose-headers"]
            assert response.headers["etag"]
        assert published.headers["location"].startswith(f"/whip/{show.id}/")
        assert watched.headers["location"].startswith(f"/whep/{show.id}/")

        metrics = (await client.get("/metrics")).text
        assert "livesale_media_publishers 1.0" in metrics
        assert "livesale_media_viewers 1.0" in metrics
        assert 'livesale_media_packets_forwarded_total{kind="video"}' in metrics

        assert (await client.delete(watched.headers["location"])).status_code == 200
        assert (await client.delete(watched.headers["location"])).status_code == 404
        ended = await client.delete(published.headers["location"], headers=show.host)
        assert ended.status_code == 200
        hub = media_hub(server)
        assert hub.peer_connections == 0
        assert hub.sessions == {}
        # The relay records the pause from a task of its own, right after the DELETE answers.
        deadline = time.monotonic() + DEADLINE
        while True:
            shown = (await client.get(f"/api/shows/{show.id}")).json()
            if shown["paused"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert shown["paused"] is True
        announced = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            message = room.get_message(timeout=0.1)
            if message and message["type"] == "message":
                announced.append(json.loads(message["data"]))
            if any(e.get("type") == "show" and e.get("paused") for e in announced):
                break
        assert any(e["type"] == "show" and e["paused"] is True for e in announced), announced
    room.close()
    await viewer.close()
    await publisher.close()
    assert encoder_calls == []


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_second_publisher_replaces_the_first_only_with_the_host_token(
    loopback_ice: None, server: LiveServer
) -> None:
    """Without the host token a second publisher is refused; with it, it takes over."""
    show = make_show(server)
    first, viewer = Publisher("vp8"), Viewer()
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await first.start(signal(client, f"/whip/{show.id}", show.host, responses))
        await viewer.start(signal(client, f"/whep/{show.id}", {}, responses))
        await viewer.wait_frames(10, timeout=DEADLINE)
        intruder = Publisher("vp8")
        await intruder.pc.setLocalDescription(await intruder.pc.createOffer())
        offer = intruder.pc.localDescription.sdp
        missing = await client.post(f"/whip/{show.id}", content=offer, headers=SDP)
        wrong = await client.post(
            f"/whip/{show.id}", content=offer, headers={**SDP, "Authorization": "Bearer nope"}
        )
        assert missing.status_code == 401
        assert wrong.status_code == 403
        assert missing.headers["content-type"] == "application/problem+json"
        await intruder.close()
        assert len(media_hub(server).sessions) == 2

        second = Publisher("vp8")
        await second.start(signal(client, f"/whip/{show.id}", show.host, responses))
        before = viewer.matching
        await viewer.wait_frames(before + 30, timeout=DEADLINE)
        old = await client.delete(responses[0].headers["location"], headers=show.host)
        assert old.status_code == 404, "the first publisher's session was replaced"
        assert viewer.bad == 0
        await second.close()
    await viewer.close()
    await first.close()


def test_whip_refuses_bad_requests_with_problems(server: LiveServer) -> None:
    """Missing/wrong token, wrong content type, show not live, bad SDP: problems, no hang."""
    live = make_show(server)
    scheduled = make_show(server, live=False)
    with server.client() as http:
        wrong_token = {**SDP, "Authorization": "Bearer wrong"}
        text = {"Content-Type": "text/plain", **live.host}
        cases = [
            (f"/whip/{live.id}", SDP, TINY_OFFER, 401, "unauthorized"),
            (f"/whip/{live.id}", wrong_token, TINY_OFFER, 403, "forbidden"),
            (f"/whip/{live.id}", text, TINY_OFFER, 415, "unsupported-media-type"),
            (f"/whip/{scheduled.id}", {**SDP, **scheduled.host}, TINY_OFFER, 409, "show-not-live"),
            (f"/whip/{live.id}", {**SDP, **live.host}, "hello", 400, "bad-offer"),
            ("/whip/nosuchshow", {**SDP, **live.host}, TINY_OFFER, 404, "not-found"),
        ]
        for url, headers, body, status, slug in cases:
            response = http.post(url, content=body, headers=headers)
            assert response.status_code == status, (url, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith(slug)
            assert response.headers["access-control-allow-origin"] == "*"
        assert media_hub(server).peer_connections == 0


def test_whep_refuses_without_a_live_publisher(server: LiveServer) -> None:
    """WHEP for a live show with no publisher, or a show not live, answers a problem at once."""
    live = make_show(server)
    scheduled = make_show(server, live=False)
    with server.client() as http:
        no_publisher = http.post(f"/whep/{live.id}", content=TINY_OFFER, headers=SDP)
        assert no_publisher.status_code == 409
        assert no_publisher.json()["type"].endswith("no-publisher")
        not_live = http.post(f"/whep/{scheduled.id}", content=TINY_OFFER, headers=SDP)
        assert not_live.status_code == 409
        assert not_live.json()["type"].endswith("show-not-live")
        wrong_type = http.post(f"/whep/{live.id}", content=TINY_OFFER)
        assert wrong_type.status_code == 415


def test_options_patch_and_unknown_sessions(server: LiveServer) -> None:
    """OPTIONS answers CORS with Accept-Post; PATCH is 405; DELETE of no session is 404."""
    show = make_show(server)
    with server.client() as http:
        for kind in ("whip", "whep"):
            preflight = http.options(
                f"/{kind}/{show.id}",
                headers={
                    "Origin": "https://player.example",
                    "Access-Control-Request-Method": "POST",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["accept-post"] == "application/sdp"
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "Authorization" in preflight.headers["access-control-allow-headers"]
            assert "Location" in preflight.headers["access-control-expose-headers"]
            patch = http.patch(
                f"/{kind}/{show.id}/abc",
                content="a=candidate",
                headers={"Content-Type": "application/trickle-ice-sdpfrag"},
            )
            assert patch.status_code == 405
            assert "DELETE" in patch.headers["allow"]
            assert http.delete(f"/{kind}/{show.id}/abc", headers=show.host).status_code == 404
            assert http.get(f"/{kind}/{show.id}").status_code == 405


@pytest.mark.netns
@pytest.mark.timeout(600)
async def test_ending_the_show_closes_its_media_sessions(
    loopback_ice: None, server: LiveServer
) -> None:
    """When a show ends, the relay closes its publisher and viewers."""
    show = make_show(server)
    publisher, viewer = Publisher("vp8"), Viewer()
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await publisher.start(signal(client, f"/whip/{show.id}", show.host, responses))
        await viewer.start(signal(client, f"/whep/{show.id}", {}, responses))
        await viewer.wait_frames(5, timeout=DEADLINE)
        ended = await client.post(f"/api/shows/{show.id}/end", headers=show.host)
        assert ended.status_code == 200
        hub = media_hub(server)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if hub.peer_connections == 0:
                break
            await asyncio.sleep(0.1)
        assert hub.peer_connections == 0 and hub.sessions == {}
    await viewer.close()
    await publisher.close()


def test_relay_off_when_aiortc_moved_keeps_chat_and_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If a hook the relay needs is missing, WHIP/WHEP answer 503 and say why (one log line);
    chat, buy clicks and checkout keep working."""
    from websockets.sync.client import connect

    from livesale.media import _aiortc
    from tests.orders.conftest import checkout_body
    from tests.room.conftest import make_show as make_room_show
    from tests.room.conftest import new_viewer, ws_url

    moved = _aiortc.Private(_aiortc.RTCRtpSender, "_send_rtp_faster", "a hook that moved")
    monkeypatch.setattr(_aiortc, "PRIVATE_NAMES", (*_aiortc.PRIVATE_NAMES, moved))
    _aiortc.problems.cache_clear()
    caplog.set_level("ERROR", logger="livesale.media")
    server = LiveServer(settings).start()
    try:
        off = [r.getMessage() for r in caplog.records if "live video is off" in r.getMessage()]
        assert len(off) == 1 and "_send_rtp_faster" in off[0]
        show = make_room_show(server.url, server.api_key)
        with server.client() as http:
            for kind, auth in (
                ("whip", {"Authorization": f"Bearer {show.host_token}"}),
                ("whep", {}),
            ):
                refused = http.post(
                    f"/{kind}/{show.id}", content=TINY_OFFER, headers={**SDP, **auth}
                )
                assert refused.status_code == 503, refused.text
                assert refused.json()["type"].endswith("/unavailable")
                assert "_send_rtp_faster" in refused.json()["detail"]
            _, token = new_viewer(server.url, "Ada")
            with connect(ws_url(server.url, show.id, token)) as ws:
                assert json.loads(ws.recv(timeout=30))["type"] == "snapshot"
                ws.send(json.dumps({"type": "chat", "text": "still here?"}))
                while (frame := json.loads(ws.recv(timeout=30)))["type"] != "chat":
                    pass
                assert frame["text"] == "still here?"
            viewer = {"Authorization": f"Bearer {token}"}
            hold = http.post(
                f"/api/shows/{show.id}/holds",
                json={"sku": show.skus[0], "qty": 1, "idempotency_key": "k1"},
                headers=viewer,
            )
            assert hold.status_code == 201, hold.text
            order = http.post(
                f"/api/holds/{hold.json()['hold_id']}/checkout",
                json=checkout_body(),
                headers=viewer,
            )
            assert order.status_code == 201, order.text
            assert order.json()["state"] == "confirmed"
    finally:
        server.stop()
        monkeypatch.undo()
        _aiortc.problems.cache_clear()
