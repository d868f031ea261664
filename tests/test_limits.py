"""Who is asking, and how often: client addresses behind trusted proxies, rate limits per
address shared through Redis, and the caps a crowd of minted tokens cannot get past.

These run with the production defaults (the other tests turn the per-address limits off:
their crowds all come from 127.0.0.1). Distinct clients are distinct loopback source
addresses (127.0.0.2, 127.0.0.3, ...: all of 127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from livesale.clients import address_key, client_address, trusted_networks
from livesale.config import Settings
from tests.conftest import LiveServer
from tests.orders.conftest import CHECKOUT


@pytest.fixture
def settings(settings: Settings) -> Settings:
    defaults = Settings()
    return replace(
        settings,
        address_cap_multiple=defaults.address_cap_multiple,
        default_limit_per_buyer=defaults.default_limit_per_buyer,
        rate_limits=defaults.rate_limits,
    )


def client_from(server: LiveServer, address: str, **kwargs: Any) -> httpx.Client:
    """An HTTP client whose connections come from ``address``."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, timeout=30, transport=transport, **kwargs)


def sign_up(client: httpx.Client, nickname: str = "v") -> httpx.Response:
    return client.post("/api/viewers", json={"nickname": nickname})


def test_client_address_behind_trusted_proxies() -> None:
    """Forwarded headers count only from a trusted peer, read from the right past every
    trusted hop; IPv6 clients count by their /64."""
    trusted = trusted_networks(("10.0.0.0/8", "::1/128"))
    xff = [("x-forwarded-for", "203.0.113.7, 10.1.2.3")]
    assert client_address("10.0.0.5", xff, trusted) == "203.0.113.7"
    assert client_address("192.0.2.9", xff, trusted) == "192.0.2.9"  # untrusted: ignored
    spoofed = [("x-forwarded-for", "1.2.3.4, 198.51.100.2")]
    assert client_address("10.0.0.5", spoofed, trusted) == "198.51.100.2"
    forwarded = [("forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"')]
    assert client_address("::1", forwarded, trusted) == "2001:db8::17"
    assert client_address("10.0.0.5", [("forwarded", "for=unknown")], trusted) == "10.0.0.5"
    assert client_address("::ffff:192.0.2.1", [], ()) == "192.0.2.1"
    # Two IPv4 clients seen on a dual-stack socket stay two clients.
    mapped = [address_key(client_address(f"::ffff:192.0.2.{n}", [], ())) for n in (1, 2)]
    assert mapped == ["192.0.2.1", "192.0.2.2"]
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("192.0.2.1") == "192.0.2.1"
    with pytest.raises(ValueError):
        trusted_networks(("not-a-network",))


def test_sign_ups_are_limited_per_address(server: LiveServer) -> None:
    """One address gets its burst of viewer tokens, then 429 with Retry-After; another address
    is not affected."""
    burst, _ = server.settings.rate("signup")
    with client_from(server, "127.0.0.2") as bot, client_from(server, "127.0.0.3") as other:
        answers = [sign_up(bot).status_code for _ in range(burst)]
        assert answers == [201] * burst
        refused = sign_up(bot)
        assert refused.status_code == 429, refused.text
        assert refused.json()["type"].endswith("rate-limited")
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["retry_after_ms"] > 0
        assert sign_up(other).status_code == 201


@pytest.fixture
def proxied(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(replace(settings, trust_proxy=("127.0.0.2/32",))).start()
    yield live
    live.stop()


def test_a_trusted_proxy_names_the_client(proxied: LiveServer) -> None:
    """Behind the trusted proxy each forwarded client has its own allowance; a client that
    sends the header itself, not through the proxy, gets nothing from it."""
    burst, _ = proxied.settings.rate("signup")
    with client_from(proxied, "127.0.0.2") as proxy:
        for _ in range(burst):
            assert proxy.post(
                "/api/viewers", json={"nickname": "a"}, headers={"X-Forwarded-For": "198.51.100.1"}
            ).is_success
        limited = proxy.post(
            "/api/viewers", json={"nickname": "a"}, headers={"X-Forwarded-For": "198.51.100.1"}
        )
        assert limited.status_code == 429
        other = proxy.post(
            "/api/viewers", json={"nickname": "b"}, headers={"X-Forwarded-For": "198.51.100.2"}
        )
        assert other.status_code == 201
    with client_from(proxied, "127.0.0.4") as direct:
        for n in range(burst):
            sign_up(direct, f"d{n}")
        forged = direct.post(
            "/api/viewers", json={"nickname": "d"}, headers={"X-Forwarded-For": f"203.0.113.{n}"}
        )
        assert forged.status_code == 429


def make_show(merchant: httpx.Client, sku: str, stock: int, limit: int | None = None) -> str:
    product = {"sku": sku, "title": sku, "price": {"amount": 500, "currency": "EUR"}}
    assert merchant.post("/api/products", json={**product, "stock": stock}).status_code == 201
    show = merchant.post("/api/shows", json={"title": "Drop", "host_name": "Mia"}).json()["id"]
    item: dict[str, Any] = {"sku": sku}
    if limit is not None:
        item["limit_per_buyer"] = limit
    assert merchant.put(f"/api/shows/{show}/lineup", json=[item]).is_success
    assert merchant.post(f"/api/shows/{show}/start").is_success
    return str(show)


def click(client: httpx.Client, show: str, token: str, sku: str, qty: int = 1) -> httpx.Response:
    return client.post(
        f"/api/shows/{show}/holds",
        json={"sku": sku, "qty": qty, "idempotency_key": f"{sku}-{qty}"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_caps_on_what_one_buyer_and_one_address_hold(server: LiveServer) -> None:
    """With no limit on the line-up the default per-buyer limit applies; one address may hold
    the address multiple of it, however many tokens it mints; a click holds at most
    ``max_qty_per_click``."""
    s = server.settings
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "DROP", 1000)
    with client_from(server, "127.0.0.5") as bot, client_from(server, "127.0.0.6") as shopper:
        token = sign_up(bot).json()["token"]
        too_big = click(bot, show, token, "DROP", s.max_qty_per_click + 1)
        assert too_big.status_code == 422 and too_big.json()["limit"] == s.max_qty_per_click
        assert click(bot, show, token, "DROP", s.default_limit_per_buyer).status_code == 201
        over = click(bot, show, token, "DROP", 1)
        assert over.status_code == 409 and over.json()["limit"] == s.default_limit_per_buyer
        cap = s.default_limit_per_buyer * s.address_cap_multiple
        held = s.default_limit_per_buyer
        while held < cap:
            fresh = sign_up(bot).json()["token"]
            assert click(bot, show, fresh, "DROP", s.default_limit_per_buyer).status_code == 201
            held += s.default_limit_per_buyer
        refused = click(bot, show, sign_up(bot).json()["token"], "DROP", 1)
        assert refused.status_code == 409, refused.text
        assert refused.json()["scope"] == "address" and refused.json()["limit"] == cap
        # Someone on another network still buys.
        assert click(shopper, show, sign_up(shopper).json()["token"], "DROP", 1).status_code == 201
    level = httpx.get(f"{server.url}/api/stock/DROP").json()
    assert level["held"] == cap + 1
    assert level["available"] + level["held"] + level["sold"] == level["on_hand"]


def test_room_joins_and_chat_are_limited_per_address(server: LiveServer) -> None:
    """Past its burst of room sockets an address is refused (429 for a script, close 4429
    for a page); chat from all of an address's viewers shares one allowance."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "ROOM", 5)
    ws = server.url.replace("http://", "ws://") + f"/ws/shows/{show}?token="
    chat_burst, _ = server.settings.rate("chat")
    # More viewers than one needs to pass the address's allowance, each within its own.
    viewers = chat_burst // 2 + 5
    with client_from(server, "127.0.0.7") as http:
        tokens = [sign_up(http, f"c{i}").json()["token"] for i in range(viewers)]
    codes: list[str] = []
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(connect(ws + t, source_address=("127.0.0.7", 0))) for t in tokens
        ]
        for sock in sockets:
            json.loads(sock.recv(10))  # the snapshot
        for n in range(2):
            for sock in sockets:
                sock.send(json.dumps({"type": "chat", "text": f"line {n}"}))
        deadline = time.monotonic() + 60  # catches a hang only
        while "rate_limited" not in codes and time.monotonic() < deadline:
            for sock in sockets:
                try:
                    frame = json.loads(sock.recv(0.05))
                except TimeoutError:
                    continue
                if frame["type"] == "error":
                    codes.append(frame["code"])
    assert "rate_limited" in codes, codes
    join_burst, _ = server.settings.rate("join")
    opened = len(sockets)
    with pytest.raises(InvalidStatus) as refused:
        while opened <= join_burst * 2:  # the burst, and what refills while these open
            with connect(ws + tokens[0], source_address=("127.0.0.7", 0)):
                opened += 1
    assert refused.value.response.status_code == 429
    assert opened >= join_burst


def test_a_viewer_cannot_take_a_hosts_name(server: LiveServer) -> None:
    """A show's host name, or one that reads the same (case, spacing, punctuation, wide
    letters), is refused as a viewer's nickname while the show is not over."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "NAME", 1)
        with server.client() as http:
            for name in ("Mia", "mia", " M.I.A ", "Ｍｉａ"):
                refused = sign_up(http, name)
                assert refused.status_code == 422, name
                assert "host" in refused.json()["detail"]
            assert sign_up(http, "Mia's fan").status_code == 201
            assert merchant.post(f"/api/shows/{show}/end").is_success
            assert sign_up(http, "Mia").status_code == 201


def test_a_forwarded_header_from_an_untrusted_peer_names_nobody(server: LiveServer) -> None:
    """Without --trust-proxy no peer, not even a local one, can name another client with
    X-Forwarded-For or Forwarded: every sign-up counts against the socket's own address."""
    burst, _ = server.settings.rate("signup")
    with client_from(server, "127.0.0.1") as local:
        answers = [
            local.post(
                "/api/viewers",
                json={"nickname": f"n{i}"},
                headers={
                    "X-Forwarded-For": f"198.51.100.{i % 250}",
                    "Forwarded": f"for=192.0.2.{i % 250}",
                },
            ).status_code
            for i in range(burst + 1)
        ]
    assert answers[-1] == 429 and answers[:burst] == [201] * burst


@pytest.fixture
def small(settings: Settings) -> Iterator[LiveServer]:
    """Small caps, so a handful of tokens reaches them: 3 viewers per address count, 2 holds
    at once per viewer (an address 2 times that), 3 WHIP/WHEP offers a minute per address."""
    live = LiveServer(
        replace(
            settings,
            crowd_per_address=3,
            live_holds_per_viewer=2,
            address_cap_multiple=2,
            rate_limits=(("offer", 3, 60.0),),
        )
    ).start()
    yield live
    live.stop()


def test_votes_wants_and_presence_count_an_address_as_a_crowd_at_most(small: LiveServer) -> None:
    """Five tokens minted on one address add three votes and three wants to an item and
    three viewers to the room; a viewer on another network adds its own."""
    with small.client(headers=small.merchant) as merchant:
        show = make_show(merchant, "CROWD", 5)
    ws = small.url.replace("http://", "ws://") + f"/ws/shows/{show}?token="
    with client_from(small, "127.0.0.51") as bot, client_from(small, "127.0.0.52") as fan:
        tokens = [sign_up(bot, f"b{i}").json()["token"] for i in range(5)]
        other = sign_up(fan, "fan").json()["token"]
    with ExitStack() as stack:
        bots = [
            stack.enter_context(connect(ws + t, source_address=("127.0.0.51", 0))) for t in tokens
        ]
        for sock in bots:
            json.loads(sock.recv(10))
        votes: list[int | str] = []
        for sock in bots:
            sock.send(json.dumps({"type": "request", "sku": "CROWD"}))
            votes.append(_answer(sock, "requests", len([v for v in votes if v != "error"]) + 1))
        assert votes == [1, 2, 3, "error", "error"]
        wants: list[int | str] = []
        for sock in bots:
            sock.send(json.dumps({"type": "plant", "sku": "CROWD"}))
            wants.append(_answer(sock, "planted"))
        assert wants == ["planted"] * 3 + ["error"] * 2
        fan_sock = stack.enter_context(connect(ws + other, source_address=("127.0.0.52", 0)))
        snapshot = json.loads(fan_sock.recv(10))
        assert snapshot["requests"] == [{"sku": "CROWD", "votes": 3}]
        fan_sock.send(json.dumps({"type": "vote", "sku": "CROWD"}))
        assert _frame(fan_sock, "requests")["queue"] == [{"sku": "CROWD", "votes": 4}]
        deadline = time.monotonic() + 30
        viewers = snapshot["viewers"]
        while viewers != 4:
            assert time.monotonic() < deadline, viewers
            viewers = _frame(fan_sock, "presence")["viewers"]
    with small.client(headers=small.merchant) as merchant:
        host = merchant.post(f"/api/shows/{show}/host-token").json()["host_token"]
    with connect(ws + host) as studio:
        assert json.loads(studio.recv(10))["plants"] == {"CROWD": 3}


def _frame(sock: Any, wanted: str) -> dict[str, Any]:
    """The next frame of type ``wanted`` (the wait only catches a hang)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = json.loads(sock.recv(30))
        if frame["type"] == wanted:
            return dict(frame)
    raise AssertionError(f"no {wanted} frame")


def _answer(sock: Any, kind: str, votes: int = 0) -> int | str:
    """How the server answered the message just sent on ``sock``: ``"error"`` (which must be
    ``address_limit``), else ``kind``, or for ``requests`` the item's vote count once it
    reaches ``votes`` (earlier broadcasts, answers to other sockets, are skipped)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = json.loads(sock.recv(30))
        if frame["type"] == "error":
            assert frame["code"] == "address_limit", frame
            return "error"
        if frame["type"] == kind == "requests":
            counted = int(frame["queue"][0]["votes"])
            if counted >= votes:
                return counted
        elif frame["type"] == kind:
            return kind
    raise AssertionError(f"no answer to {kind}")


def test_holds_at_once_are_capped_per_viewer_and_per_address(small: LiveServer) -> None:
    """A viewer holds two items at once, not three; releasing or buying one frees its place.
    The viewers of one address together hold at most twice that."""
    with small.client(headers=small.merchant) as merchant:
        skus = [f"CAP{i}" for i in range(6)]
        for sku in skus:
            product = {"sku": sku, "title": sku, "price": {"amount": 500, "currency": "EUR"}}
            assert merchant.post("/api/products", json={**product, "stock": 9}).status_code == 201
        show = merchant.post("/api/shows", json={"title": "Caps", "host_name": "Kim"}).json()["id"]
        lineup = [{"sku": sku} for sku in skus]
        assert merchant.put(f"/api/shows/{show}/lineup", json=lineup).is_success
        assert merchant.post(f"/api/shows/{show}/start").is_success
    with client_from(small, "127.0.0.53") as http:
        token = sign_up(http).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        first, second = (click(http, show, token, sku).json() for sku in skus[:2])
        third = click(http, show, token, skus[2])
        assert third.status_code == 409, third.text
        assert third.json()["scope"] == "holds" and third.json()["limit"] == 2
        assert http.delete(f"/api/holds/{first['hold_id']}", headers=auth).is_success
        assert click(http, show, token, skus[2]).status_code == 201
        paid = http.post(
            f"/api/holds/{second['hold_id']}/checkout",
            json=CHECKOUT,
            headers=auth,
        )
        assert paid.status_code == 201, paid.text
        assert click(http, show, token, skus[3]).status_code == 201
        # The address: two more viewers fill its 4 places; a fifth hold is refused.
        for n in range(2):
            other = sign_up(http, f"o{n}").json()["token"]
            assert click(http, show, other, skus[4 + n]).status_code == 201
        refused = click(http, show, sign_up(http, "o9").json()["token"], skus[5])
        assert refused.status_code == 409, refused.text
        assert refused.json()["scope"] == "address_holds" and refused.json()["limit"] == 4
    with client_from(small, "127.0.0.54") as elsewhere:
        assert click(elsewhere, show, sign_up(elsewhere).json()["token"], skus[5]).is_success


def test_whip_and_whep_offers_are_limited_per_address(small: LiveServer) -> None:
    """Past its burst of offers an address gets 429 with Retry-After, and the CORS headers a
    player needs to read it; another address still gets through to the offer's checks."""
    with small.client(headers=small.merchant) as merchant:
        show = make_show(merchant, "OFFER", 1)
    sdp = {"Content-Type": "application/sdp", "Origin": "https://player.example"}
    with client_from(small, "127.0.0.55") as player, client_from(small, "127.0.0.56") as other:
        codes = [player.post(f"/whep/{show}", content="v=0\r\n", headers=sdp) for _ in range(3)]
        assert all(r.status_code != 429 for r in codes)
        limited = player.post(f"/whep/{show}", content="v=0\r\n", headers=sdp)
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["Access-Control-Allow-Origin"] == "*"
        whip = player.post(f"/whip/{show}", content="v=0\r\n", headers=sdp)
        assert whip.status_code == 429
        # No host is publishing: the other address gets as far as "not live yet".
        assert other.post(f"/whep/{show}", content="v=0\r\n", headers=sdp).status_code == 409


@pytest.fixture
def slow_clicks(settings: Settings) -> Iterator[LiveServer]:
    """4 buy clicks a minute per address."""
    live = LiveServer(replace(settings, rate_limits=(("hold", 4, 60.0),))).start()
    yield live
    live.stop()


def test_buy_clicks_are_limited_per_address(slow_clicks: LiveServer) -> None:
    """Every click counts, a retried one too; past the burst a click is a 429 that holds
    nothing, whichever token sends it; another address still buys."""
    with slow_clicks.client(headers=slow_clicks.merchant) as merchant:
        show = make_show(merchant, "CLICK", 10)
    server = slow_clicks
    with client_from(server, "127.0.0.57") as bot, client_from(server, "127.0.0.58") as other:
        token = sign_up(bot).json()["token"]
        answers = [click(bot, show, token, "CLICK").status_code for _ in range(4)]
        assert answers == [201] * 4, answers  # the same hold, four times
        refused = click(bot, show, sign_up(bot).json()["token"], "CLICK")
        assert refused.status_code == 429, refused.text
        assert refused.json()["type"].endswith("rate-limited")
        assert int(refused.headers["Retry-After"]) >= 1
        assert click(other, show, sign_up(other).json()["token"], "CLICK").status_code == 201
    level = httpx.get(f"{slow_clicks.url}/api/stock/CLICK").json()
    assert level["held"] == 2 and level["available"] == 8


def test_a_hold_on_an_unknown_show_is_404(server: LiveServer) -> None:
    """A buy click names a show that does not exist: 404, not "the show is not live"."""
    with server.client(headers=server.merchant) as merchant:
        make_show(merchant, "REAL", 1)
    with server.client() as http:
        token = sign_up(http).json()["token"]
        missing = click(http, "sh_nothing", token, "REAL")
        assert missing.status_code == 404, missing.text
