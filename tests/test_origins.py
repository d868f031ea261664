"""DNS rebinding fails: every request must name this server in ``Host`` (421 otherwise), and a
room socket opened by a browser must come from one of its origins, on real sockets."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from livesale import origins
from livesale.config import Settings
from livesale.media.origin import node_tag, session_node, session_prefix, session_worker
from tests import raw_http
from tests.conftest import LiveServer
from tests.room.conftest import make_show


def upgrade(port: int, path: str, host: str, origin: str | None) -> tuple[int, dict[str, str]]:
    """A raw WebSocket upgrade with ``host`` and ``origin``: the status and headers answered."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with raw_http.connect(port) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, headers, _ = raw_http.Reader(sock).response()
    return status, headers


def get(port: int, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """``GET path`` on a raw connection with exactly ``headers`` (no ``Host`` added)."""
    with raw_http.connect(port) as sock:
        lines = [f"GET {path} HTTP/1.1", *headers, "Connection: close"]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return raw_http.Reader(sock).response()


@pytest.fixture
def public(settings: Settings) -> Iterator[LiveServer]:
    """A server behind a proxy at https://live.shop.example."""
    live = LiveServer(replace(settings, public_origins=("https://live.shop.example",))).start()
    yield live
    live.stop()


def test_origins_of_the_settings() -> None:
    """Without --public-origin a loopback bind answers as itself and the loopback names; with
    it, as the named origins (and --public-url); origins are compared normalised."""
    bound = origins.of(Settings(port=8000))
    assert bound.public == (
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
    )
    named = origins.of(
        Settings(
            public_origins=("HTTPS://Live.Shop.Example:443/", "https://cdn.shop.example"),
            public_url="https://watch.shop.example/live",
        )
    )
    assert named.public == (
        "https://live.shop.example",
        "https://cdn.shop.example",
        "https://watch.shop.example",
    )
    assert named.host_allows("live.shop.example") and named.host_allows("watch.shop.example")
    for literal in ("127.0.0.1", "192.0.2.7", "::1", "localhost"):
        assert named.host_allows(literal), literal
    assert not named.host_allows("attacker.example")
    assert not named.host_allows("127.0.0.1.nip.io")
    assert origins.host_name("[::1]:8000") == "::1"
    assert origins.host_name("Shop.Example.:443") == "shop.example"
    for bad in ("a b", "shop.example:x", "[::1", "", "user@shop.example"):
        assert origins.host_name(bad) is None, bad
    assert origins.problems(Settings(public_origins=("shop.example",))) == [
        "--public-origin: 'shop.example' is not an http or https URL"
    ]
    assert "more than an origin" in origins.problems(Settings(allow_embed=("https://a.b/x",)))[0]


def test_a_node_answers_the_other_nodes_by_its_node_url() -> None:
    """``--node-url`` is an origin, and the name the other nodes use for this one is allowed
    besides its public ones; a node's tag starts its session ids, before its worker's."""
    node = Settings(public_origins=("https://live.shop.example",), node_url="http://node-b:8000")
    assert origins.of(node).host_allows("node-b")
    assert not origins.of(Settings(public_origins=node.public_origins)).host_allows("node-b")
    assert origins.problems(node) == []
    for bad in ("node-b:8000", "http://node-b:8000/live", "ftp://node-b"):
        assert origins.problems(Settings(node_url=bad))[0].startswith("--node-url: "), bad
    tag = node_tag("http://NODE-B:8000/")
    assert tag == node_tag("http://node-b:8000") and tag != node_tag("http://node-c:8000")
    prefix = session_prefix(Settings(node_url="http://node-b:8000", workers=2, worker=1))
    assert prefix == f"{tag}.w1."
    assert session_node(prefix + "abc") == tag and session_worker(prefix + "abc") == 1
    assert session_node("w3.abc") is None and session_worker("w3.abc") == 3
    assert session_node("abc") is None and session_worker("abc") is None


def test_rebinding_upgrade_is_refused(server: LiveServer) -> None:
    """The reproduction: a raw upgrade naming attacker.example in Host and Origin gets 421,
    not 101, and so does a plain request; the server's own names are answered."""
    show = make_show(server.url, server.api_key)
    port = server.settings.port
    path = f"/ws/shows/{show.id}?token={show.host_token}"
    evil = f"attacker.example:{port}"
    assert upgrade(port, path, evil, f"http://{evil}")[0] == 421
    status, headers, body = get(port, "/api/shows", f"Host: {evil}")
    assert status == 421 and headers["content-type"] == "application/problem+json"
    assert b"/problems/misdirected" in body and b"attacker.example" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert upgrade(port, path, host, f"http://{host}")[0] == 101, host
        assert get(port, "/healthz", f"Host: {host}")[0] == 200, host


def test_missing_or_doubled_host_is_400(server: LiveServer) -> None:
    """An HTTP/1.1 request without Host, or with two, is a 400 (RFC 9112 §3.2)."""
    port = server.settings.port
    assert get(port, "/healthz")[0] == 400
    assert get(port, "/healthz", "Host: 127.0.0.1", "Host: attacker.example")[0] == 400
    assert get(port, "/healthz", "Host: a b")[0] == 400


def test_public_origin_is_answered_and_others_refused(public: LiveServer) -> None:
    """With --public-origin, its host is served and its pages open room sockets; another
    host is 421 and a page of another origin cannot open the room."""
    show = make_show(public.url, public.api_key)
    port = public.settings.port
    path = f"/ws/shows/{show.id}?token={show.host_token}"
    ours = "https://live.shop.example"
    assert get(port, "/healthz", "Host: live.shop.example")[0] == 200
    assert upgrade(port, path, "live.shop.example", ours)[0] == 101
    # Behind the proxy the socket may reach the server under its own address: still the page's.
    assert upgrade(port, path, f"127.0.0.1:{port}", ours)[0] == 101
    assert upgrade(port, path, f"127.0.0.1:{port}", "https://elsewhere.example")[0] == 403
    assert upgrade(port, path, "elsewhere.example", "https://elsewhere.example")[0] == 421
    assert get(port, "/", "Host: elsewhere.example")[0] == 421


def test_serve_reads_public_origin_from_environment(
    spawn: Any, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LIVESALE_PUBLIC_ORIGIN`` sets --public-origin; a malformed one stops the start."""
    monkeypatch.setenv("LIVESALE_PUBLIC_ORIGIN", "https://live.shop.example")
    proc = spawn("--data-dir", str(tmp_path / "data"), "--redis-url", redis_url)
    assert get(proc.port, "/healthz", "Host: live.shop.example")[0] == 200
    assert get(proc.port, "/healthz", "Host: attacker.example")[0] == 421
    proc.stop()
    monkeypatch.setenv("LIVESALE_PUBLIC_ORIGIN", "live.shop.example")
    bad = spawn("--data-dir", str(tmp_path / "data"), "--redis-url", redis_url, wait=False)
    assert bad.proc is not None and bad.proc.wait(60) != 0
    assert "--public-origin: 'live.shop.example' is not an http or https URL" in bad.output()
