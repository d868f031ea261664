"""The room WebSocket on a real server: joining, the host's line-up controls, requests, plants,
chat moderation, hearts, presence, relayed stock, and snapshots that match the event stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from livesale import events
from livesale.room.ws import CLOSE_BAD_TOKEN, CLOSE_NO_SHOW
from tests.conftest import LiveServer
from tests.room.conftest import Connect, ShowSetup, View, make_show, new_viewer, ws_url


@pytest.mark.parametrize(("token", "status"), [("v1.forged.token", 403), ("host_wrong", 403)])
async def test_bad_token_refused_before_open(
    server: LiveServer, show: ShowSetup, token: str, status: int
) -> None:
    """A wrong token gets an HTTP problem instead of an open socket."""
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(ws_url(server.url, show.id, token))
    assert caught.value.response.status_code == status
    assert b'"status":%d' % status in caught.value.response.body


@pytest.mark.parametrize("origin", [None, "page"])
async def test_no_token_watches_read_only(
    server: LiveServer, show: ShowSetup, connect: Connect, origin: str | None
) -> None:
    """A socket without a token watches: the snapshot and the room's events, counted among the
    viewers, hearts allowed; chat, asks, wants and notices wait for a nickname (``sign_in``)."""
    kw = {"origin": server.url} if origin else {}
    watcher = await connect(show, "", **kw)
    assert watcher.snapshot["you"]["role"] == "watcher"
    assert watcher.snapshot["you"]["viewer_id"].startswith("watch")
    assert watcher.snapshot["lineup"]["items"], "the line-up is shown at once"
    host = await connect(show, show.host_token)
    await host.expect("presence", lambda m: m["viewers"] == 1)
    for msg in (
        {"type": "chat", "text": "hi"},
        {"type": "request", "sku": show.skus[0]},
        {"type": "plant", "sku": show.skus[0], "want": True},
        {"type": "notify", "sku": show.skus[0], "on": True},
        {"type": "feature", "sku": show.skus[0]},
    ):
        await watcher.ws.send(json.dumps(msg))
        refused = await watcher.expect("error")
        assert refused["code"] in ("sign_in", "not_host"), refused
    await watcher.ws.send(json.dumps({"type": "heart", "count": 3}))
    await host.expect("hearts", lambda m: m["count"] >= 3)
    await host.ws.send(json.dumps({"type": "feature", "sku": show.skus[0]}))
    assert (await watcher.expect("featured"))["sku"] == show.skus[0]
    chat = [m for m in host.seen if m["type"] == "chat"]
    assert chat == [], "a watcher's chat line reached the room"


async def test_unknown_show_refused(server: LiveServer, show: ShowSetup) -> None:
    """A socket for a show that does not exist is refused with 404."""
    _, token = new_viewer(server.url, "ann")
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(ws_url(server.url, "sh_nothere", token))
    assert caught.value.response.status_code == 404


@pytest.mark.parametrize(
    ("token", "code"),
    [("v1.forged.token", CLOSE_BAD_TOKEN), ("host_wrong", CLOSE_BAD_TOKEN)],
)
async def test_browser_bad_token_closed_with_its_code(
    server: LiveServer, show: ShowSetup, token: str, code: int
) -> None:
    """A browser's socket with a wrong token opens, then closes 4403 unread."""
    ws = await websockets.connect(ws_url(server.url, show.id, token), origin=server.url)  # type: ignore[arg-type]
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_browser_unknown_show_closed_4404(server: LiveServer, show: ShowSetup) -> None:
    """A browser's socket for a show that does not exist opens, then closes with 4404."""
    _, token = new_viewer(server.url, "ann")
    ws = await websockets.connect(ws_url(server.url, "sh_nothere", token), origin=server.url)  # type: ignore[arg-type]
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_NO_SHOW


async def test_browser_malformed_messages_close_1008_and_token_still_works(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Three malformed messages from a browser close with 1008; the same token joins again."""
    _, token = new_viewer(server.url, "ann")
    ann = await connect(show, token, origin=server.url)
    for _ in range(3):
        await ann.ws.send("{not json")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ann.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    again = await connect(show, token, origin=server.url)
    assert again.snapshot["you"]["nick"] == "ann"


async def test_foreign_origin_refused(server: LiveServer, show: ShowSetup) -> None:
    """A browser page from another origin cannot open the room; the server's own can."""
    _, token = new_viewer(server.url, "ann")
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(ws_url(server.url, show.id, token), origin="https://evil.example")  # type: ignore[arg-type]
    assert caught.value.response.status_code == 403
    ws = await websockets.connect(ws_url(server.url, show.id, token), origin=server.url)  # type: ignore[arg-type]
    assert '"type":"snapshot"' in str(await ws.recv())
    await ws.close()


async def test_snapshot_on_join(server: LiveServer, show: ShowSetup, connect: Connect) -> None:
    """Joining sends the show, line-up with stock, featured, queue, viewers, chat and holds."""
    vid, token = new_viewer(server.url, "ann")
    viewer = await connect(show, token)
    snap = viewer.snapshot
    assert snap["you"] == {"role": "viewer", "viewer_id": vid, "nick": "ann"}
    assert snap["show"]["state"] == "live"
    assert [i["sku"] for i in snap["lineup"]["items"]] == list(show.skus)
    assert all(i["available"] == 20 for i in snap["lineup"]["items"])
    assert snap["featured"] is None and snap["requests"] == [] and snap["chat"] == []
    assert snap["viewers"] == 1 and snap["holds"] == [] and snap["plants"] == {}
    host = await connect(show, show.host_token)
    assert host.snapshot["you"]["role"] == "host"


async def test_feature_reaches_everyone_and_resolves_request(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Host feature/unfeature reach every viewer; featuring an item resolves its request."""
    _, t1 = new_viewer(server.url, "ann")
    _, t2 = new_viewer(server.url, "bob")
    host, ann, bob = [await connect(show, t) for t in (show.host_token, t1, t2)]
    await ann.send(type="request", sku="EYE-2")
    await bob.expect("requests", lambda m: m["queue"] == [{"sku": "EYE-2", "votes": 1}])
    await host.send(type="feature", sku="EYE-2")
    for client in (ann, bob, host):
        featured = await client.expect("featured")
        assert featured["sku"] == "EYE-2" and featured["at"] > 0
        resolved = await client.expect("requests")
        assert resolved["queue"] == [] and resolved["seq"] == featured["seq"] + 1
    await host.send(type="unfeature")
    assert (await bob.expect("featured"))["sku"] is None
    lineup = httpx.get(f"{server.url}/api/shows/{show.id}/lineup").json()
    assert lineup["featured"] is None
    await host.send(type="feature", sku="HAIR-4")
    await ann.expect("featured", lambda m: m["sku"] == "HAIR-4")
    assert httpx.get(f"{server.url}/api/shows/{show.id}/lineup").json()["featured"] == "HAIR-4"


async def _room_writers(server: LiveServer) -> int:
    """How many room writer tasks the server's loop runs now."""

    async def count() -> int:
        return sum(task.get_name() == "room-writer" for task in asyncio.all_tasks())

    assert server.loop is not None
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(count(), server.loop))


async def test_sockets_that_keep_up_have_no_writer_task(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A socket whose frames all go straight out has no writer task (nor queue): the room's
    cost per idle viewer is its connection, not a task waiting for frames."""
    viewers = [await connect(show, new_viewer(server.url, f"v{n}")[1]) for n in range(12)]
    host = await connect(show, show.host_token)
    for sku in ("EYE-2", "HAIR-4"):
        await host.send(type="feature", sku=sku)
        for viewer in viewers:
            await viewer.expect("featured", lambda m, sku=sku: m["sku"] == sku)
    assert await _room_writers(server) == 0
    # A closing socket gets a writer for its close frame, which ends with it.
    await host.send(type="ban", viewer_id=viewers[0].snapshot["you"]["viewer_id"])
    with pytest.raises(ConnectionClosed):
        while True:
            await viewers[0].recv()
    for _ in range(100):
        if await _room_writers(server) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _room_writers(server) == 0


async def test_an_open_socket_keeps_only_what_it_uses(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """An open room socket holds no handshake headers, the light inbox and writability flag,
    and its handler runs under the browser edge's checks alone, not the whole HTTP stack."""
    from livesale._uvicorn.protocols import Flag, Inbox
    from livesale.room import ROOM

    viewer = await connect(show, new_viewer(server.url, "ann")[1], origin=server.url)
    await viewer.send(type="heart", count=1)

    async def look() -> list[tuple[Any, list[str]]]:
        hub = server.app.state.services.get(ROOM)
        seen = []
        for conn in hub.rooms[show.id].conns:
            protocol = conn.sink
            chain = []
            for task in asyncio.all_tasks():
                coro: Any = task.get_coro()
                frame = getattr(coro, "cr_frame", None)
                if frame is not None and frame.f_locals.get("self") is protocol:
                    while hasattr(coro, "cr_await"):
                        chain.append(coro.__qualname__)
                        coro = coro.cr_await
            seen.append((protocol, chain))
        return seen

    assert server.loop is not None
    [(protocol, chain)] = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(look(), server.loop)
    )
    assert list(protocol.request.headers.raw_items()) == []
    assert list(protocol.response.headers.raw_items()) == []
    assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Flag)
    assert chain == ["WebSocketsSansIOProtocol.run_asgi", "App.__call__", "BrowserEdge.__call__"]
    await viewer.send(type="chat", text="still served")
    assert (await viewer.expect("chat"))["text"] == "still served"


async def test_host_only_and_off_lineup_refused(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A viewer cannot feature; nobody can feature or request an item off the line-up."""
    _, token = new_viewer(server.url, "ann")
    host, ann = await connect(show, show.host_token), await connect(show, token)
    for msg in ({"type": "feature", "sku": "LIP-1"}, {"type": "slow_mode", "seconds": 5}):
        await ann.send(**msg)
        assert (await ann.expect("error"))["code"] == "not_host"
    await host.send(type="feature", sku="NOPE-9")
    assert (await host.expect("error"))["code"] == "not_in_lineup"
    await ann.send(type="request", sku="NOPE-9")
    assert (await ann.expect("error"))["code"] == "not_in_lineup"


async def test_lineup_put_reaches_everyone(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Replacing the line-up over HTTP sends everyone the new ``lineup``."""
    _, token = new_viewer(server.url, "ann")
    ann = await connect(show, token)
    put = httpx.put(
        f"{server.url}/api/shows/{show.id}/lineup",
        json=[{"sku": "SKIN-3"}, {"sku": "LIP-1"}],
        headers=server.merchant,  # what is on the line-up is the merchant's
    )
    assert put.status_code == 200
    msg = await ann.expect("lineup")
    assert [i["sku"] for i in msg["lineup"]["items"]] == ["SKIN-3", "LIP-1"]
    assert msg["seq"] == ann.snapshot["seq"] + 1


async def test_removing_the_featured_item_from_the_lineup_unfeatures_it(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A line-up without the featured item features nothing: everyone is told, the line-up
    says so, and a viewer joining afterwards is not shown the removed item as featured."""
    _, token = new_viewer(server.url, "ann")
    host, ann = await connect(show, show.host_token), await connect(show, token)
    await host.send(type="feature", sku="EYE-2")
    await ann.expect("featured", lambda m: m["sku"] == "EYE-2")
    put = httpx.put(
        f"{server.url}/api/shows/{show.id}/lineup",
        json=[{"sku": "SKIN-3"}, {"sku": "LIP-1"}],
        headers=server.merchant,  # what is on the line-up is the merchant's
    )
    assert put.status_code == 200 and put.json()["featured"] is None
    assert (await ann.expect("featured"))["sku"] is None
    lineup = (await ann.expect("lineup"))["lineup"]
    assert lineup["featured"] is None and not any(i["featured"] for i in lineup["items"])
    assert httpx.get(f"{server.url}/api/shows/{show.id}/lineup").json()["featured"] is None
    late = await connect(show, new_viewer(server.url, "bob")[1])
    assert late.snapshot["featured"] is None
    # Keeping the featured item in a new line-up keeps it featured.
    await host.send(type="feature", sku="LIP-1")
    await ann.expect("featured", lambda m: m["sku"] == "LIP-1")
    put = httpx.put(
        f"{server.url}/api/shows/{show.id}/lineup",
        json=[{"sku": "LIP-1"}],
        headers=server.merchant,  # what is on the line-up is the merchant's
    )
    assert put.json()["featured"] == "LIP-1"


async def test_requests_ranked_by_votes_then_age(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Votes rank the queue, ties go to the older request; one vote per viewer; host resolves."""
    viewers = [await connect(show, new_viewer(server.url, f"v{n}")[1]) for n in range(3)]
    host = await connect(show, show.host_token)
    a, b, c = viewers
    await a.send(type="request", sku="LIP-1")
    await host.expect("requests")
    await b.send(type="request", sku="EYE-2")
    await host.expect("requests")
    await c.send(type="vote", sku="EYE-2")
    queue = (await host.expect("requests"))["queue"]
    assert queue == [{"sku": "EYE-2", "votes": 2}, {"sku": "LIP-1", "votes": 1}]
    await c.send(type="request", sku="LIP-1")  # a request for an open item is a vote
    queue = (await host.expect("requests"))["queue"]
    assert queue == [{"sku": "LIP-1", "votes": 2}, {"sku": "EYE-2", "votes": 2}]
    await c.send(type="vote", sku="LIP-1")
    assert (await c.expect("error"))["code"] == "already_voted"
    await a.send(type="vote", sku="SKIN-3")
    assert (await a.expect("error"))["code"] == "not_requested"
    await host.send(type="resolve", sku="LIP-1")
    assert (await a.expect("requests", lambda m: len(m["queue"]) == 1))["queue"][0]["sku"] == (
        "EYE-2"
    )
    await a.send(type="request", sku="LIP-1")  # resolved: a new request may open
    await host.expect("requests", lambda m: {"sku": "LIP-1", "votes": 1} in m["queue"])


async def test_plants_private_and_counted_for_host(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Plants: the host sees counts, only the viewer sees their list, and it survives reconnects."""
    _, t1 = new_viewer(server.url, "ann")
    _, t2 = new_viewer(server.url, "bob")
    host, ann, bob = [await connect(show, t) for t in (show.host_token, t1, t2)]
    await ann.send(type="plant", sku="SKIN-3")
    assert (await ann.expect("planted")) | {"seq": 0} == {
        "type": "planted",
        "sku": "SKIN-3",
        "want": True,
        "viewer_id": ann.snapshot["you"]["viewer_id"],
        "seq": 0,
    }
    assert (await host.expect("plants"))["count"] == 1
    await bob.send(type="plant", sku="SKIN-3")
    assert (await host.expect("plants"))["count"] == 2
    await ann.send(type="plant", sku="SKIN-3", want=False)
    assert (await host.expect("plants"))["count"] == 1
    await ann.send(type="plant", sku="LIP-1")
    await ann.expect("planted", lambda m: m["sku"] == "LIP-1")
    leaked = [m for m in await bob.quiet() if m["type"] == "plants" or m.get("sku") == "LIP-1"]
    assert not leaked
    again = await connect(show, t1)
    assert again.snapshot["planted"] == ["LIP-1"] and again.snapshot["plants"] == {}
    host2 = await connect(show, show.host_token)
    assert host2.snapshot["plants"] == {"SKIN-3": 1, "LIP-1": 1}


async def test_chat_trim_length_delete_and_tail(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Chat is trimmed, 1–280 characters; the host deletes a line for everyone and the tail too."""
    vid, token = new_viewer(server.url, "ann")
    host, ann = await connect(show, show.host_token), await connect(show, token)
    await ann.send(type="chat", text="   hi there  ")
    line = await host.expect("chat")
    assert (line["text"], line["nick"], line["viewer_id"], line["id"]) == (
        "hi there",
        "ann",
        vid,
        line["seq"],
    )
    for text, code in (("   ", "chat_empty"), ("x" * 281, "chat_too_long")):
        await ann.send(type="chat", text=text)
        assert (await ann.expect("error"))["code"] == code
    await ann.send(type="chat", text="y" * 280)
    await host.expect("chat", lambda m: m["text"] == "y" * 280)
    await host.send(type="delete_chat", id=line["id"])
    assert (await ann.expect("chat_deleted"))["id"] == line["id"]
    late = await connect(show, token)
    assert [m["text"] for m in late.snapshot["chat"]] == ["y" * 280]
    await host.send(type="delete_chat", id=10_000)
    assert (await host.expect("error"))["code"] == "not_found"


async def test_chat_flood_limited_while_others_chat(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """One viewer's flood is cut to the burst; another viewer's lines all go through."""
    _, t1 = new_viewer(server.url, "flood")
    _, t2 = new_viewer(server.url, "calm")
    host, flood, calm = [await connect(show, t) for t in (show.host_token, t1, t2)]
    for n in range(15):
        await flood.send(type="chat", text=f"spam {n}")
    await calm.send(type="chat", text="hello")
    errors = [await flood.expect("error") for _ in range(10)]
    errors += [m for m in await flood.quiet(0.3) if m["type"] == "error"]
    assert {e["code"] for e in errors} == {"rate_limited"}
    await host.expect("chat", lambda m: m["text"] == "hello")
    await host.quiet(0.3)
    said = [m["text"] for m in host.seen if m["type"] == "chat"]
    assert len([t for t in said if t.startswith("spam")]) <= 4
    await asyncio.sleep(1.1)  # the bucket refills at one line a second
    await flood.send(type="chat", text="sorry")
    await host.expect("chat", lambda m: m["text"] == "sorry")


async def test_mute_and_slow_mode(server: LiveServer, show: ShowSetup, connect: Connect) -> None:
    """A muted viewer is refused until unmuted; slow mode spaces each viewer's lines."""
    vid, token = new_viewer(server.url, "ann")
    host, ann = await connect(show, show.host_token), await connect(show, token)
    await host.send(type="mute", viewer_id=vid, seconds=60)
    assert (await ann.expect("muted"))["until"] > 0
    await ann.send(type="chat", text="let me talk")
    assert (await ann.expect("error"))["code"] == "muted"
    assert (await connect(show, token)).snapshot["muted_until"] > 0
    await host.send(type="mute", viewer_id=vid, seconds=0)
    assert (await ann.expect("muted"))["until"] == 0
    await host.send(type="slow_mode", seconds=30)
    assert (await ann.expect("slow_mode"))["seconds"] == 30
    await ann.send(type="chat", text="one")
    await host.expect("chat", lambda m: m["text"] == "one")
    await ann.send(type="chat", text="two")
    refusal = await ann.expect("error")
    assert refusal["code"] == "slow_mode" and "retry in" in refusal["detail"]
    await host.send(type="chat", text="the host is never slowed")
    await host.send(type="chat", text="nor twice")
    await ann.expect("chat", lambda m: m["text"] == "nor twice" and m["host"])
    await host.send(type="slow_mode", seconds=0)
    await ann.expect("slow_mode", lambda m: m["seconds"] == 0)


async def test_hearts_coalesced(server: LiveServer, show: ShowSetup, connect: Connect) -> None:
    """Many heart taps arrive as a few ``hearts`` frames whose counts add up."""
    viewers = [await connect(show, new_viewer(server.url, f"h{n}")[1]) for n in range(3)]
    host = await connect(show, show.host_token)
    for v in viewers:
        for _ in range(10):
            await v.send(type="heart")
        await v.send(type="heart", count=5)
    total, frames = 0, 0
    while total < 45:
        total += (await host.expect("hearts"))["count"]
        frames += 1
    assert total == 45 and frames < 10
    await viewers[0].send(type="heart", count=51)
    assert (await viewers[0].expect("error"))["code"] == "bad_message"


async def test_presence_counts_viewers(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """``presence`` follows viewers joining and leaving (the host is not a viewer)."""
    host = await connect(show, show.host_token)
    ann = await connect(show, new_viewer(server.url, "ann")[1])
    bob = await connect(show, new_viewer(server.url, "bob")[1])
    await host.expect("presence", lambda m: m["viewers"] == 2)
    await bob.ws.close()
    await ann.expect("presence", lambda m: m["viewers"] == 1)


async def test_stock_and_sales_coalesced(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """500 stock changes become a few frames holding the latest stock; sales add up."""
    ann = await connect(show, new_viewer(server.url, "ann")[1])
    redis = aioredis.from_url(server.settings.redis_url or "")
    try:
        for left in range(499, -1, -1):
            await events.publish(
                redis, show.id, {"type": "stock", "sku": "LIP-1", "available": left}
            )
            await events.publish(redis, show.id, {"type": "sale", "sku": "LIP-1", "qty": 1})
        await events.publish(redis, show.id, {"type": "stock", "sku": "EYE-2", "available": 7})
    finally:
        await redis.aclose()
    latest: dict[str, int] = {}
    stock_frames, sold = 0, 0
    while latest.get("LIP-1") != 0 or "EYE-2" not in latest or sold < 500:
        msg = await ann.recv()
        if msg["type"] == "stock":
            stock_frames += 1
            latest.update({i["sku"]: i["available"] for i in msg["items"]})
        elif msg["type"] == "sale":
            sold += sum(i["qty"] for i in msg["items"] if i["sku"] == "LIP-1")
    assert latest == {"LIP-1": 0, "EYE-2": 7} and sold == 500
    assert stock_frames < 50


async def test_hold_and_order_only_to_buyer(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """``hold`` and ``order`` events reach the buyer's connections and nobody else."""
    vid, t1 = new_viewer(server.url, "buyer")
    buyer, buyer_tab2 = await connect(show, t1), await connect(show, t1)
    other = await connect(show, new_viewer(server.url, "other")[1])
    redis = aioredis.from_url(server.settings.redis_url or "")
    try:
        await events.publish(
            redis, show.id, {"type": "hold", "viewer_id": vid, "hold": {"hold_id": "h1"}}
        )
        await events.publish(
            redis, show.id, {"type": "order", "viewer_id": vid, "order": {"id": "o1"}}
        )
    finally:
        await redis.aclose()
    for tab in (buyer, buyer_tab2):
        assert (await tab.expect("hold"))["hold"] == {"hold_id": "h1"}
        assert (await tab.expect("order"))["order"] == {"id": "o1"}
    assert not [m for m in await other.quiet(0.5) if m["type"] in ("hold", "order")]


async def test_show_end_reaches_room_and_closes_actions(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Ending the show sends ``show``; then chat and requests are refused. Its replay sells
    (the default), so no close of sales is announced: holds run their own time."""
    ended, event = await end_in_sight(server, show, connect)
    assert event["state"] == "ended"
    assert event["replay_sales"] is ended.json()["replay_sales"] is True
    assert event["sales_close_at"] is ended.json()["sales_close_at"] is None
    ann = await connect(show, new_viewer(server.url, "bo")[1])
    await ann.send(type="chat", text="bye")
    assert (await ann.expect("error"))["code"] == "show_ended"


async def end_in_sight(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> tuple[httpx.Response, dict[str, Any]]:
    """The host ends ``show`` while a viewer watches: the answer, and the viewer's ``show``."""
    ann = await connect(show, new_viewer(server.url, "ann")[1])
    ended = httpx.post(
        f"{server.url}/api/shows/{show.id}/end",
        headers={"Authorization": f"Bearer {show.host_token}"},
    )
    assert ended.status_code == 200
    return ended, await ann.expect("show")


async def test_a_show_sold_only_live_announces_when_its_sales_close(
    server: LiveServer, connect: Connect
) -> None:
    """Without replay sales the end tells the room when live holds stop checking out."""
    show = make_show(server.url, server.api_key, replay_sales=False)
    ended, event = await end_in_sight(server, show, connect)
    assert event["state"] == "ended" and event["replay_sales"] is False
    # The page's hold countdown ends at the show's end plus the grace period, at the latest.
    close_at = ended.json()["ended_at"] + server.settings.grace_seconds
    assert event["sales_close_at"] == ended.json()["sales_close_at"] == close_at


async def test_reconnect_and_gap_give_a_snapshot_equal_to_the_stream(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A client that follows events, or asks for a snapshot after a gap, matches the server."""
    _, token = new_viewer(server.url, "ann")
    host = await connect(show, show.host_token)
    follower = await connect(show, token)
    view = View(follower.snapshot)

    async def busy() -> None:
        for n in range(30):
            await host.send(type="chat", text=f"line {n}")
            if n % 5 == 0:
                await host.send(type="feature", sku=show.skus[n % 4])
            if n == 12:
                await host.send(type="slow_mode", seconds=3)

    task = asyncio.create_task(busy())
    # A client joining mid-stream: snapshot, then only what the snapshot does not hold.
    await asyncio.sleep(0.01)
    joiner = await connect(show, token)
    joined = View(joiner.snapshot)
    await task
    await host.send(type="delete_chat", id=follower.snapshot["seq"] + 3)
    final = await host.expect("chat_deleted")
    for client, v in ((follower, view), (joiner, joined)):
        while v.seq < final["seq"]:
            v.apply(await client.recv())
        assert not v.gap
    fresh = await connect(show, token)
    assert view.same_as(fresh.snapshot) and joined.same_as(fresh.snapshot)
    # A client that missed events asks for a snapshot and is equal again.
    stale = View(fresh.snapshot)
    await host.send(type="feature", sku="LIP-1")
    await fresh.expect("featured")
    await fresh.send(type="snapshot")
    stale.apply(await fresh.expect("snapshot"))
    assert stale.featured == "LIP-1" and stale.same_as((await connect(show, token)).snapshot)
