"""What the room does with abusive or broken clients: oversized frames, garbage, peers that stop
reading, silent connections and unfinished handshakes."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from tests.conftest import LiveServer
from tests.room.conftest import Connect, ShowSetup, new_viewer, ws_url


async def test_oversized_frame_closed_1009(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A frame over 4 KiB closes the socket with 1009."""
    ann = await connect(show, new_viewer(server.url, "ann")[1], max_size=None)
    await ann.ws.send(json.dumps({"type": "chat", "text": "x" * 5000}))
    with pytest.raises(ConnectionClosed) as closed:
        await ann.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_garbage_gets_errors_then_1008(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Bad JSON or a wrong shape gets ``error``; an unknown type too; persisting closes 1008."""
    ann = await connect(show, new_viewer(server.url, "ann")[1])
    await ann.ws.send('{"type": "dance"}')
    assert (await ann.expect("error"))["code"] == "unknown_type"
    await ann.ws.send("{not json")
    assert (await ann.expect("error"))["code"] == "bad_message"
    await ann.send(type="chat", text="still here")  # a good message resets the count
    await ann.expect("chat")
    for bad in ('{"type": "chat"}', "[1, 2]", b"\x00binary"):
        await ann.ws.send(bad)
    codes = [(await ann.expect("error"))["code"] for _ in range(3)]
    assert codes == ["bad_message"] * 3
    with pytest.raises(ConnectionClosed) as closed:
        await ann.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["chat", "vote", "feature", "mute", "plant", "heart"])},
        optional={
            "sku": st.text(max_size=70),
            "text": st.text(max_size=300),
            "seconds": st.integers(),
            "count": st.integers(),
            "id": st.integers(),
            "viewer_id": st.text(max_size=80),
            "want": st.booleans(),
        },
    ).map(json.dumps),
)


async def test_garbage_never_crashes_nor_reaches_others(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Hypothesis garbage from one viewer: the server survives and the others see nothing."""
    sent: list[str | bytes] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(frames, min_size=1, max_size=4))
    def collect(batch: list[str | bytes]) -> None:
        sent.extend(batch)

    # Made before anyone connects: generating it blocks this loop, whose clients could not
    # answer the server's pings meanwhile.
    collect()
    token = new_viewer(server.url, "mallory")[1]
    watcher = await connect(show, new_viewer(server.url, "watcher")[1])
    mallory = await connect(show, token)
    for frame in sent:
        if mallory.ws.close_code is not None:
            mallory = await connect(show, token)
        try:
            await mallory.ws.send(frame)
        except ConnectionClosed:
            mallory = await connect(show, token)
    leaked = [
        m for m in await watcher.quiet(1.0) if m["type"] not in ("presence", "hearts", "chat")
    ]
    leaked += [
        m
        for m in watcher.seen
        if m["type"] == "chat" and m["viewer_id"] != mallory.snapshot["you"]["viewer_id"]
    ]
    assert not leaked
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    fresh = await connect(show, new_viewer(server.url, "after")[1])
    await fresh.send(type="chat", text="the room still works")
    await watcher.expect("chat", lambda m: m["text"] == "the room still works")


async def _raw_ws(
    server: LiveServer, show: ShowSetup, token: str
) -> tuple[ClientProtocol, asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand on a socket with a tiny receive buffer, which is then never
    read unless the test says so."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.settings.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    protocol = ClientProtocol(parse_uri(ws_url(server.url, show.id, token)))
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    while protocol.handshake_exc is None and protocol.state.name == "CONNECTING":
        protocol.receive_data(await reader.read(65536))
    return protocol, reader, writer


async def _close_code(
    protocol: ClientProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> int | None:
    """Read (and answer) everything the server sends until it hangs up; its close code."""
    code = None
    while True:
        data = await asyncio.wait_for(reader.read(1 << 20), 30)
        if not data:
            return code
        protocol.receive_data(data)
        for event in protocol.events_received():
            if getattr(event, "opcode", None) is Opcode.CLOSE:
                code = Close.parse(event.data).code
        writer.write(b"".join(protocol.data_to_send()))


# The client that stops reading cannot answer pings either; a keepalive far longer than the
# test keeps the queue limit, not the keepalive, the reason it is cut, however busy the machine.
@pytest.mark.parametrize("keepalive", [600.0])
async def test_slow_consumer_dropped_1013_without_delaying_others(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A client that stops reading is closed with 1013; the others get every line meanwhile."""
    protocol, reader, writer = await _raw_ws(server, show, new_viewer(server.url, "stuck")[1])
    # These two read everything (their client library buffers without limit).
    host = await connect(show, show.host_token, max_queue=None)
    fast = await connect(show, new_viewer(server.url, "fast")[1], max_queue=None)
    text = "z" * 270
    auth = {"Authorization": f"Bearer {server.api_key}"}
    extra = [
        {"sku": f"BULK-{n}", "title": "t" * 150, "price": {"amount": 100, "currency": "EUR"}}
        for n in range(150)
    ]
    assert httpx.post(f"{server.url}/api/products/import", json=extra, headers=auth).is_success
    big = [{"sku": p["sku"]} for p in extra]  # each ``lineup`` frame is ~40 KB
    sent = 0
    for _ in range(12):
        for _ in range(5):
            big.reverse()
            put = httpx.put(f"{server.url}/api/shows/{show.id}/lineup", json=big, headers=auth)
            assert put.status_code == 200
        for _ in range(300):
            sent += 1
            await host.send(type="chat", text=f"{sent:05d}{text}")
        # Every line reaches the reading viewer promptly, whatever the stuck one does.
        await fast.expect(
            "chat", lambda m, last=f"{sent:05d}": m["text"].startswith(last), timeout=60
        )
        metrics = httpx.get(f"{server.url}/metrics").text
        if "livesale_room_slow_closed_total 1.0" in metrics:
            break
    else:
        raise AssertionError("the stuck client was never dropped")
    lines = [int(m["text"][:5]) for m in fast.seen if m["type"] == "chat"]
    assert lines == list(range(1, sent + 1))
    assert await _close_code(protocol, reader, writer) == 1013
    writer.close()


# It cannot answer pings while it does not read: a keepalive far longer than the pause.
@pytest.mark.parametrize("keepalive", [600.0])
async def test_viewer_that_pauses_reading_gets_every_frame_in_order(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A viewer that stops reading until its socket buffers are full (so later frames wait in
    its queue), then reads again, gets every frame once, in order, and stays connected."""
    protocol, reader, writer = await _raw_ws(server, show, new_viewer(server.url, "napper")[1])
    host = await connect(show, show.host_token, max_queue=None)
    auth = {"Authorization": f"Bearer {server.api_key}"}
    extra = [
        {"sku": f"BULK-{n}", "title": "t" * 150, "price": {"amount": 100, "currency": "EUR"}}
        for n in range(150)
    ]
    assert httpx.post(f"{server.url}/api/products/import", json=extra, headers=auth).is_success
    big = [{"sku": p["sku"]} for p in extra]
    # 20 line-ups of ~40 KB: more than the kernel and the transport buffer hold for a socket
    # that is not read, far fewer frames than the queue's limit.
    for _ in range(20):
        big.reverse()
        put = httpx.put(f"{server.url}/api/shows/{show.id}/lineup", json=big, headers=auth)
        assert put.status_code == 200
    await host.send(type="chat", text="wake up")
    await host.expect("chat", lambda m: m["text"] == "wake up", timeout=60)

    frames: list[dict[str, Any]] = []
    while not any(m["type"] == "chat" for m in frames):
        data = await asyncio.wait_for(reader.read(1 << 20), 60)
        assert data, "the server hung up"
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                assert event.opcode is not Opcode.CLOSE, Close.parse(event.data)
                if event.opcode is Opcode.TEXT:
                    frames.append(json.loads(event.data))
        writer.write(b"".join(protocol.data_to_send()))
    lineups = [m for m in frames if m["type"] == "lineup"]
    seqs = [m["seq"] for m in lineups]
    assert len(lineups) == 20 and seqs == list(range(seqs[0], seqs[0] + 20))
    firsts = [m["lineup"]["items"][0]["sku"] for m in lineups]
    assert firsts == ["BULK-149", "BULK-0"] * 10
    writer.close()


@pytest.mark.timeout(60)
async def test_silent_peer_closed_after_missed_pings(server: LiveServer, show: ShowSetup) -> None:
    """A socket whose peer never answers pings is cut within ping interval + timeout (10 s)."""
    protocol, reader, writer = await _raw_ws(server, show, new_viewer(server.url, "mute")[1])
    loop = asyncio.get_running_loop()
    start = loop.time()
    while await asyncio.wait_for(reader.read(65536), 20):
        pass  # read but never answer (no pong)
    assert loop.time() - start < 20
    writer.close()


@pytest.mark.timeout(60)
async def test_unfinished_handshake_closed(server: LiveServer) -> None:
    """A connection that never finishes its request headers is closed at the deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.port)
    writer.write(b"GET /ws/shows/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await asyncio.wait_for(reader.read(1024), 20) == b""
    assert loop.time() - start < 15
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", server.settings.port)
    assert await asyncio.wait_for(silent_reader.read(1024), 20) == b""
    writer.close()
    silent.close()


async def test_snapshot_requests_are_limited_per_socket(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A viewer's socket gets a few snapshots on demand, then ``rate_limited`` errors for the
    rest of a burst (each snapshot carries the whole line-up); its other messages and the
    host's snapshots are not held back."""
    ann = await connect(show, new_viewer(server.url, "ann")[1])
    host = await connect(show, show.host_token)
    for _ in range(8):
        await ann.send(type="snapshot")
    await ann.send(type="chat", text="still chatting")
    await ann.expect("chat", lambda m: m["text"] == "still chatting")
    kinds = [m["type"] for m in ann.seen if m["type"] in ("snapshot", "error")]
    errors = [m for m in ann.seen if m["type"] == "error"]
    assert kinds[:3] == ["snapshot"] * 3 and len(kinds) == 8
    assert len(errors) >= 4  # one more may pass on a machine slow enough to refill the bucket
    assert {m["code"] for m in errors} == {"rate_limited"} and "retry in" in errors[0]["detail"]
    for _ in range(8):
        await host.send(type="snapshot")
    for _ in range(8):
        await host.expect("snapshot")
