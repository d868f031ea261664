"""Moderation that sticks: a mute or a ban binds the viewer and the address it joined from, so
minting a new token lifts neither; a host token can be replaced, closing the studio it opened;
a host reorders the line-up but never reprices it. And "Notify me" on a sold-out item.

Distinct clients are distinct loopback source addresses (all of 127.0.0.0/8 is loopback).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import LiveServer
from tests.test_limits import click, client_from, make_show, sign_up


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    """Closes every socket a test opens."""
    with ExitStack() as stack:
        yield stack


def ws_url(server: LiveServer, show: str, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/shows/{show}?token={token}"


def opened(stack: ExitStack, url: str, address: str = "127.0.0.1", **kw: Any) -> ClientConnection:
    return stack.enter_context(connect(url, source_address=(address, 0), **kw))


def room(
    stack: ExitStack, server: LiveServer, show: str, token: str, address: str
) -> ClientConnection:
    """A room socket from ``address``, past its snapshot."""
    sock = opened(stack, ws_url(server, show, token), address)
    assert json.loads(sock.recv(10))["type"] == "snapshot"
    return sock


def frames_until(sock: ClientConnection, wanted: str, timeout: float = 30) -> dict[str, Any]:
    """The first frame of type ``wanted`` (the timeout only catches a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(sock.recv(timeout))
        if frame["type"] == wanted:
            return dict(frame)
    raise AssertionError(f"no {wanted} frame")


def closed_with(sock: ClientConnection, timeout: float = 30) -> int:
    """The close code the server ends ``sock`` with (frames before it are skipped)."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            sock.recv(timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def host_token(merchant: httpx.Client, show: str) -> str:
    made = merchant.post(f"/api/shows/{show}/host-token")
    assert made.status_code == 200, made.text
    return str(made.json()["host_token"])


def test_a_mute_holds_for_a_new_token_from_the_same_address(
    server: LiveServer, sockets: ExitStack
) -> None:
    """The host mutes a viewer; a token it mints afterwards on the same address is muted too,
    while a viewer on another network chats on; lifting the mute lifts both."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "MUTE", 5)
        host = room(sockets, server, show, host_token(merchant, show), "127.0.0.1")
    with client_from(server, "127.0.0.21") as troll, client_from(server, "127.0.0.22") as fan:
        first = sign_up(troll, "troll").json()
        again = sign_up(troll, "troll2").json()["token"]
        other = sign_up(fan, "fan").json()["token"]
    with room(sockets, server, show, first["token"], "127.0.0.21") as sock:
        host.send(json.dumps({"type": "mute", "viewer_id": first["viewer_id"], "seconds": 600}))
        assert frames_until(sock, "muted")["until"] > 0
    with room(sockets, server, show, again, "127.0.0.21") as sock:
        sock.send(json.dumps({"type": "chat", "text": "I am back with a new token"}))
        assert frames_until(sock, "error")["code"] == "muted"
    with room(sockets, server, show, other, "127.0.0.22") as sock:
        sock.send(json.dumps({"type": "chat", "text": "hello"}))
        assert frames_until(sock, "chat")["text"] == "hello"
    host.send(json.dumps({"type": "mute", "viewer_id": first["viewer_id"], "seconds": 0}))
    time.sleep(0.2)
    with room(sockets, server, show, again, "127.0.0.21") as sock:
        sock.send(json.dumps({"type": "chat", "text": "sorry"}))
        assert frames_until(sock, "chat")["text"] == "sorry"


def test_a_ban_removes_the_viewer_and_its_address(server: LiveServer, sockets: ExitStack) -> None:
    """A ban closes the viewer's sockets and its address's (4410); a new token from that
    address is refused on rejoin (403 ``banned`` for a script, 4410 for a page) and at the
    till; another network is untouched; lifting the ban lets them back."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "BAN", 50)
        host = room(sockets, server, show, host_token(merchant, show), "127.0.0.1")
    with client_from(server, "127.0.0.31") as bot, client_from(server, "127.0.0.32") as fan:
        target = sign_up(bot, "scalper").json()
        sibling = sign_up(bot, "scalper2").json()["token"]
        fresh = sign_up(bot, "scalper3").json()["token"]
        other = sign_up(fan, "fan").json()["token"]
        viewer = room(sockets, server, show, target["token"], "127.0.0.31")
        same_network = room(sockets, server, show, sibling, "127.0.0.31")
        bystander = room(sockets, server, show, other, "127.0.0.32")
        host.send(json.dumps({"type": "ban", "viewer_id": target["viewer_id"]}))
        assert closed_with(viewer) == 4410
        assert closed_with(same_network) == 4410
        url = ws_url(server, show, fresh)
        with pytest.raises(InvalidStatus) as refused:
            opened(sockets, url, "127.0.0.31")
        assert refused.value.response.status_code == 403
        assert b"banned" in refused.value.response.body
        page = opened(sockets, url, "127.0.0.31", additional_headers={"Origin": server.url})
        assert closed_with(page) == 4410
        till = click(bot, show, fresh, "BAN")
        assert till.status_code == 403 and till.json()["type"].endswith("/banned")
        # The bystander's socket stays open and its buy goes through.
        bystander.send(json.dumps({"type": "chat", "text": "still here"}))
        assert frames_until(bystander, "chat")["text"] == "still here"
        assert click(fan, show, other, "BAN").status_code == 201
        host.send(json.dumps({"type": "ban", "viewer_id": target["viewer_id"], "lift": True}))
        deadline = time.monotonic() + 30
        while click(bot, show, fresh, "BAN").status_code == 403:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        room(sockets, server, show, fresh, "127.0.0.31")


def test_a_viewer_cannot_ban(server: LiveServer, sockets: ExitStack) -> None:
    """Ban is the host's: a viewer's ban message is refused and bans nobody."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "NOBAN", 5)
    with client_from(server, "127.0.0.41") as http:
        one, two = (sign_up(http, n).json() for n in ("one", "two"))
    with room(sockets, server, show, one["token"], "127.0.0.41") as sock:
        sock.send(json.dumps({"type": "ban", "viewer_id": two["viewer_id"]}))
        assert frames_until(sock, "error")["code"] == "not_host"
    room(sockets, server, show, two["token"], "127.0.0.41")


def test_replacing_the_host_token(server: LiveServer, sockets: ExitStack) -> None:
    """A new host token stops the old one at once, for HTTP and for new sockets, and closes
    the studio sockets it opened (4403, so the page asks for the new link)."""
    with server.client(headers=server.merchant) as merchant:
        created = merchant.post("/api/shows", json={"title": "T", "host_name": "Ann"}).json()
        show, old = created["id"], created["host_token"]
        studio = room(sockets, server, show, old, "127.0.0.1")
        answer = merchant.post(f"/api/shows/{show}/host-token")
        assert answer.status_code == 200
        made = answer.json()
        assert made["studio_url"].endswith(f"/studio/{show}#token={made['host_token']}")
        assert closed_with(studio) == 4403
        with server.client() as http:
            stale = http.post(
                f"/api/shows/{show}/start", headers={"Authorization": f"Bearer {old}"}
            )
            assert stale.status_code == 403
            fresh = {"Authorization": f"Bearer {made['host_token']}"}
            assert http.post(f"/api/shows/{show}/start", headers=fresh).status_code == 200
            # Only a merchant replaces it: the host token itself cannot.
            assert http.post(f"/api/shows/{show}/host-token", headers=fresh).status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            opened(sockets, ws_url(server, show, old))
        assert refused.value.response.status_code == 403
        room(sockets, server, show, made["host_token"], "127.0.0.1")


def test_a_host_reorders_but_never_reprices(server: LiveServer, sockets: ExitStack) -> None:
    """With the host token the line-up can be put in another order; a changed price, limit
    or item is the merchant's (403), and the line-up is left as it was."""
    with server.client(headers=server.merchant) as merchant:
        for sku in ("A1", "B1", "C1"):
            product = {"sku": sku, "title": sku, "price": {"amount": 99999, "currency": "EUR"}}
            assert merchant.post("/api/products", json={**product, "stock": 3}).status_code == 201
        created = merchant.post("/api/shows", json={"title": "T", "host_name": "Bo"}).json()
        show, token = created["id"], created["host_token"]
        lineup = [{"sku": "A1", "limit_per_buyer": 2}, {"sku": "B1"}]
        assert merchant.put(f"/api/shows/{show}/lineup", json=lineup).is_success
    as_host = {"Authorization": f"Bearer {token}"}
    with server.client(headers=as_host) as host:
        url = f"/api/shows/{show}/lineup"
        attempts = [
            [
                {"sku": "A1", "limit_per_buyer": 2, "price": {"amount": 0, "currency": "EUR"}},
                {"sku": "B1"},
            ],
            [{"sku": "A1"}, {"sku": "B1"}],
            [{"sku": "A1", "limit_per_buyer": 2}, {"sku": "B1"}, {"sku": "C1"}],
            [{"sku": "A1", "limit_per_buyer": 2}],
        ]
        for attempt in attempts:
            refused = host.put(url, json=attempt)
            assert refused.status_code == 403, attempt
        assert [i["sku"] for i in host.get(url).json()["items"]] == ["A1", "B1"]
        reordered = host.put(url, json=[{"sku": "B1"}, {"sku": "A1", "limit_per_buyer": 2}])
        assert reordered.status_code == 200, reordered.text
        items = reordered.json()["items"]
        assert [i["sku"] for i in items] == ["B1", "A1"]
        assert all(i["price"]["amount"] == 99999 for i in items)


def test_notify_me_when_a_sold_out_item_is_back(server: LiveServer, sockets: ExitStack) -> None:
    """A viewer who asks is told once when units come back (here: a hold released); the ask
    survives a reconnect; a viewer who did not ask hears nothing of it."""
    with server.client(headers=server.merchant) as merchant:
        show = make_show(merchant, "LAST", 1)
    with client_from(server, "127.0.0.61") as http:
        holder, waiter, other = (sign_up(http, n).json() for n in ("holder", "waiter", "other"))
        hold = click(http, show, holder["token"], "LAST")
        assert hold.status_code == 201
        sock = room(sockets, server, show, waiter["token"], "127.0.0.61")
        sock.send(json.dumps({"type": "notify", "sku": "LAST"}))
        ack = frames_until(sock, "notifying")
        assert ack["sku"] == "LAST" and ack["on"] is True
        sock.close()
        again = opened(sockets, ws_url(server, show, waiter["token"]), "127.0.0.61")
        assert json.loads(again.recv(10))["notifying"] == ["LAST"]
        bystander = room(sockets, server, show, other["token"], "127.0.0.61")
        auth = {"Authorization": f"Bearer {holder['token']}"}
        assert http.delete(f"/api/holds/{hold.json()['hold_id']}", headers=auth).is_success
        back = frames_until(again, "back_in_stock")
        assert back["sku"] == "LAST" and back["available"] == 1
        bystander.send(json.dumps({"type": "chat", "text": "after"}))
        while (frame := json.loads(bystander.recv(30)))["type"] != "chat":
            assert frame["type"] != "back_in_stock"
        deadline = time.monotonic() + 30
        while True:
            fresh = room_snapshot(server, show, waiter["token"])
            if fresh["notifying"] == []:
                break
            assert time.monotonic() < deadline, fresh["notifying"]
            time.sleep(0.1)


def room_snapshot(server: LiveServer, show: str, token: str) -> dict[str, Any]:
    with connect(ws_url(server, show, token), source_address=("127.0.0.61", 0)) as sock:
        return dict(json.loads(sock.recv(10)))
