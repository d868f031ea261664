"""The server's protocols on a real socket (one segment per small response), and the plain
uvicorn protocols the server falls back to when uvicorn's internals moved."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from livesale import _uvicorn
from livesale.config import Settings
from tests import raw_http
from tests.conftest import LiveServer
from tests.room.conftest import make_show, new_viewer, ws_url

#: Offset of ``tcpi_data_segs_in`` (u32) in Linux's ``struct tcp_info`` (since Linux 4.6).
DATA_SEGS_IN = 152


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, DATA_SEGS_IN)[0])


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_head_and_body_leave_in_one_segment(server: LiveServer) -> None:
    """uvicorn writes a response's head and body separately; livesale sends them together, so a
    small answer (a buy click's) costs one send and reaches the buyer as one TCP segment."""
    with socket.create_connection(("127.0.0.1", server.settings.port)) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(5):  # keep-alive: every response of the connection, not only the first
            before = data_segments_in(sock)
            sock.sendall(request)
            response = read_response(sock)
            assert response.startswith(b"HTTP/1.1 200 ")
            assert response.endswith(b'{"status":"ok"}')
            assert data_segments_in(sock) - before == 1


def test_expect_100_continue_still_gets_its_interim_answer(server: LiveServer) -> None:
    """The interim ``100 Continue`` is not held back with the response head: a client waiting
    for it before sending the body gets it at once."""
    with socket.create_connection(("127.0.0.1", server.settings.port)) as sock:
        sock.settimeout(5)
        body = b'{"nickname": "ada"}'
        sock.sendall(
            b"POST /api/viewers HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        response = read_response(sock)
        assert response.startswith(b"HTTP/1.1 201 ")
        assert b'"token"' in response


@pytest.fixture
def uvicorn_moved(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The installed uvicorn looks as if a protocol internal the subclasses need had moved."""
    moved = (_uvicorn.PRIVATE_NAMES[0][0], "HttpToolsProtocol", "on_frame_begin", "method")
    monkeypatch.setattr(_uvicorn, "PRIVATE_NAMES", (*_uvicorn.PRIVATE_NAMES, moved))
    _uvicorn.server_protocols.cache_clear()
    yield
    monkeypatch.undo()
    _uvicorn.server_protocols.cache_clear()


def test_falls_back_to_uvicorns_protocols_and_says_so(
    uvicorn_moved: None, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """When uvicorn's internals moved, the server logs it once and serves on uvicorn's own
    protocols: HTTP answers, HEAD and the room socket work as before, and h11 still bounds an
    unfinished request head."""
    caplog.set_level("WARNING", logger="livesale")
    assert _uvicorn.server_protocols() == ("h11", "websockets-sansio")
    warned = [r.getMessage() for r in caplog.records if "uvicorn's own protocols" in r.getMessage()]
    assert len(warned) == 1 and "on_frame_begin" in warned[0]
    server = LiveServer(settings).start()
    try:
        assert httpx.get(server.url + "/healthz", timeout=30).json() == {"status": "ok"}
        assert httpx.head(server.url + "/healthz", timeout=30).status_code == 200
        with raw_http.connect(server.settings.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nCookie: " + b"a" * settings.max_header_bytes)
            reader = raw_http.Reader(sock)
            assert reader.response()[0] == 400 and reader.closed()
        show = make_show(server.url, server.api_key)
        _, token = new_viewer(server.url, "Ada")
        with connect(ws_url(server.url, show.id, token)) as ws:
            snapshot = json.loads(ws.recv(timeout=30))
            assert snapshot["type"] == "snapshot"
            assert [i["sku"] for i in snapshot["lineup"]["items"]] == list(show.skus)
    finally:
        server.stop()


HEAD_PATHS = ["/healthz", "/", "/api/shows", "/static/watch.html", "/no/such/page"]


@pytest.mark.parametrize("path", HEAD_PATHS)
def test_head_answers_like_get_without_a_body(server: LiveServer, path: str) -> None:
    """HEAD on any GET route gets GET's status and headers at once, and no body (RFC 9110
    §9.3.2); the connection then serves the next request."""
    with raw_http.connect(server.settings.port) as sock:
        reader = raw_http.Reader(sock)
        sock.sendall(raw_http.request("GET", path))
        get_status, get_headers, get_body = reader.response("GET")
        sock.sendall(raw_http.request("HEAD", path))
        head_status, head_headers, _ = reader.response("HEAD")
        assert head_status == get_status
        for name in ("content-type", "content-length"):
            assert head_headers.get(name) == get_headers.get(name), name
        sock.sendall(raw_http.request("GET", "/healthz"))
        assert reader.response("GET")[2] == b'{"status":"ok"}'  # nothing was left in between
        assert reader.buffer == b""
    assert get_body or get_status == 404


def test_pipelined_head_then_get_get_their_own_answers(server: LiveServer) -> None:
    """A HEAD and a GET sent together on one connection get two answers, in order, each the
    one its request asked for."""
    with raw_http.connect(server.settings.port) as sock:
        reader = raw_http.Reader(sock)
        sock.sendall(
            raw_http.request("HEAD", "/healthz") + raw_http.request("GET", "/api/openapi.json")
        )
        status, headers, _ = reader.response("HEAD")
        assert status == 200 and headers["content-type"] == "application/json"
        assert headers["content-length"] == str(len(b'{"status":"ok"}'))
        status, headers, body = reader.response("GET")
        assert status == 200 and json.loads(body)["openapi"].startswith("3.")
        assert reader.buffer == b""


async def test_inbox_keeps_order_and_holds_nothing_when_empty() -> None:
    """The WebSocket's inbox: events come out in order, a waiting reader is woken by the next
    one, a second reader at once is an error, and an empty inbox keeps no queue."""
    from livesale._uvicorn.protocols import Inbox

    inbox = Inbox()
    assert inbox.empty() and inbox._events is None
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty() and inbox._events is None
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await inbox.get()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(reader, 5) == 3
    cancelled = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    inbox.put_nowait(4)  # a reader that gave up does not take it
    assert await inbox.get() == 4


async def test_flag_wakes_every_waiter_and_holds_no_list_when_set() -> None:
    """The writability flag behaves like ``asyncio.Event`` for ``set``/``clear``/``wait``."""
    from livesale._uvicorn.protocols import Flag

    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True] * 3
    assert flag.is_set() and flag._waiters is None
    assert await flag.wait() is True
    flag.clear()
    gave_up = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    gave_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    assert not flag._waiters
