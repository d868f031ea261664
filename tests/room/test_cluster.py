"""Two ``livesale serve`` processes on one Redis and one data directory serve the same room, on
one Redis and on a Redis Cluster (sharded pub/sub)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_key
from tests.room.conftest import Connect, make_show, new_viewer


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.parametrize("bus", ["redis", "cluster"])
async def test_two_processes_share_one_room(
    spawn: Any, bus: str, request: pytest.FixtureRequest, tmp_path: Path, connect: Connect
) -> None:
    """Viewers on two processes see the same events with the same numbers; presence counts
    both; a hold on one process is the stock the other's viewers see, and the buyer's own
    event reaches the buyer's socket on the other."""
    redis_url = request.getfixturevalue("cluster_url" if bus == "cluster" else "redis_url")
    data = tmp_path / "shared"
    a = spawn("--data-dir", str(data), "--redis-url", redis_url)
    b = spawn("--data-dir", str(data), "--redis-url", redis_url)
    show = make_show(a.url, await asyncio.to_thread(create_key, data))
    host = await connect(show, show.host_token, base=a.url)
    on_a = await connect(show, new_viewer(a.url, "ann")[1], base=a.url)
    on_b = await connect(show, new_viewer(b.url, "bob")[1], base=b.url)
    assert on_a.snapshot["seq"] == on_b.snapshot["seq"]

    await host.send(type="feature", sku="EYE-2")
    got = await asyncio.gather(on_a.expect("featured"), on_b.expect("featured"))
    assert got[0] == got[1]
    await on_b.send(type="request", sku="LIP-1")
    await on_a.send(type="chat", text="hi from a")
    await on_b.send(type="chat", text="hi from b")
    await host.send(type="feature", sku="SKIN-3")
    # The request went to the other process: a vote is only taken on a request already open,
    # so ann votes once she has seen it (as a page does).
    await on_a.expect("requests", lambda m: [r["sku"] for r in m["queue"]] == ["LIP-1"])
    await on_a.send(type="vote", sku="LIP-1")
    for n in range(10):
        await (on_a if n % 2 else on_b).send(type="heart")
    final = await host.expect("requests", lambda m: m["queue"] == [{"sku": "LIP-1", "votes": 2}])

    def sequenced(client: Any) -> list[tuple[int, str]]:
        return [(m["seq"], m["type"]) for m in client.seen if m["type"] in _SEQUENCED]

    for client in (on_a, on_b):
        await client.expect("requests", lambda m: m["seq"] == final["seq"])
    assert sequenced(on_a) == sequenced(on_b)
    numbers = [s for s, _ in sequenced(on_a)]
    assert numbers == list(range(on_a.snapshot["seq"] + 1, final["seq"] + 1))

    hearts = sum(m["count"] for m in on_a.seen if m["type"] == "hearts")
    while hearts < 10:
        hearts += (await on_a.expect("hearts"))["count"]
    assert hearts == 10
    for client in (on_a, on_b):
        # Presence is sent when the total changes: it may already have been read above.
        if not any(m["type"] == "presence" and m["viewers"] == 2 for m in client.seen):
            await client.expect("presence", lambda m: m["viewers"] == 2)

    # A feature on one process reaches the other promptly (a generous bound; the benchmark
    # measures it).
    loop = asyncio.get_running_loop()
    start = loop.time()
    await host.send(type="feature", sku="HAIR-4")
    await on_b.expect("featured", lambda m: m["sku"] == "HAIR-4")
    assert loop.time() - start < 2

    # A buy click on a: its stock event (on the SKU's channel) reaches b's viewers, and its
    # hold event the buyer's own socket on b.
    buyer_id, buyer = new_viewer(a.url, "cy")
    mine = await connect(show, buyer, base=b.url)
    made = await asyncio.to_thread(
        httpx.post,
        f"{a.url}/api/shows/{show.id}/holds",
        json={"sku": "HAIR-4", "qty": 2, "idempotency_key": "k1"},
        headers={"Authorization": f"Bearer {buyer}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    seen = await on_b.expect("stock", lambda m: any(i["sku"] == "HAIR-4" for i in m["items"]))
    assert {i["sku"]: i["available"] for i in seen["items"]}["HAIR-4"] == 18
    hold = await mine.expect("hold")
    assert hold["hold"]["hold_id"] == made.json()["hold_id"] and hold["viewer_id"] == buyer_id


_SEQUENCED = {"featured", "requests", "chat", "chat_deleted", "slow_mode", "show", "lineup"}
