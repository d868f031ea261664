"""Three livesale nodes behind nginx (``deploy/nginx/livesale.conf``, one ``server`` line each),
sharing PostgreSQL and a 3-master Redis Cluster, each with a data directory of its own, as on
machines of their own: a flash sale through nginx sells the stock once, and one node killed
with SIGKILL in the middle of it loses no paid order while the others sell on; its room
viewers reconnect through nginx and resync from a snapshot."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ONE_ADDRESS_ARGS, ServerProcess, create_key
from tests.nginx import Nginx, balancing
from tests.orders.conftest import CHECKOUT, Answer, burst
from tests.postgres import connect

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_only, pytest.mark.timeout(600)]

STOCK = 40
#: Buyers in the first wave (their checkouts are under way when a node dies), then the rest.
FIRST, BUYERS = 25, 1000
#: Catches a hang only.
DEADLINE = 180.0


@pytest.fixture
def nodes(spawn: Any, tmp_path: Path, database_url: str, cluster_url: str) -> list[ServerProcess]:
    common = ["--database-url", database_url, "--redis-url", cluster_url]
    common += ["--trust-proxy", "127.0.0.1/32", "--payments", "test", "--log-level", "warning"]
    return [
        spawn("--data-dir", str(tmp_path / f"node-{n}"), *common, *ONE_ADDRESS_ARGS)
        for n in range(3)
    ]


@pytest.fixture
def balancer(nodes: list[ServerProcess], tmp_path: Path) -> Iterator[Nginx]:
    with balancing([n.port for n in nodes], tmp_path / "nginx") as proxy:
        yield proxy


def test_a_sale_through_nginx_survives_a_node_killed_in_the_middle(
    nodes: list[ServerProcess], balancer: Nginx, database_url: str
) -> None:
    """1,000 buyers through nginx for 40 units: exactly 40 holds and no unit oversold, though
    one node is killed (SIGKILL) while the first buyers check out; every order answered as
    paid is confirmed in PostgreSQL, which agrees with Redis; the dead node's room viewers
    reconnect through nginx and their snapshot shows the sale as it stands."""
    key = create_key(database_url)
    merchant = httpx.Client(
        base_url=balancer.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    )
    product = {"sku": "NODE", "title": "Node", "price": {"amount": 1990, "currency": "EUR"}}
    assert merchant.post("/api/products", json={**product, "stock": STOCK}).status_code == 201
    show = merchant.post("/api/shows", json={"title": "Nodes", "host_name": "Mia"}).json()["id"]
    assert merchant.put(f"/api/shows/{show}/lineup", json=[{"sku": "NODE"}]).status_code == 200
    assert merchant.post(f"/api/shows/{show}/start").status_code == 200
    made = asyncio.run(
        burst(
            balancer.url,
            [("POST", "/api/viewers", {"nickname": f"b{i}"}, {}) for i in range(BUYERS)],
        )
    )
    buyers = [{"Authorization": f"Bearer {v.json()['token']}"} for v in made]
    victim = nodes[1]

    async def sale() -> dict[str, Any]:
        # Room viewers on every node, connected straight to it: the victim's are known.
        rooms = {
            n: [await _room(node.url, show, buyers[-1 - 3 * n - i]) for i in range(3)]
            for n, node in enumerate(nodes)
        }
        first = await _clicks(balancer.url, show, buyers[:FIRST])
        held = {i: a.json()["hold_id"] for i, a in first.items() if a.status_code == 201}
        assert len(held) == FIRST
        # The first buyers check out through nginx while a node dies under them.
        paying = asyncio.create_task(_checkouts(balancer.url, buyers, held))
        await asyncio.sleep(0.05)
        victim.stop(signal.SIGKILL)
        paid = await paying
        rest = await _clicks(balancer.url, show, buyers[FIRST:], offset=FIRST)
        held |= {i: a.json()["hold_id"] for i, a in rest.items() if a.status_code == 201}
        paid |= await _checkouts(
            balancer.url, buyers, {i: h for i, h in held.items() if i >= FIRST}
        )
        # The victim's viewers lost their sockets; through nginx they get a fresh snapshot.
        for ws, _ in rooms[1]:
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), DEADLINE)
        again = [await _room(balancer.url, show, buyers[-4 - i]) for i in range(3)]
        for _, snapshot in again:
            assert snapshot["lineup"]["items"][0]["available"] == 0
        for ws, _ in [*rooms[0], *rooms[2], *again]:
            await ws.close()
        return {"held": held, "paid": paid, "first": first, "rest": rest}

    result = asyncio.run(sale())
    answers = [*result["first"].values(), *result["rest"].values()]
    assert sorted(a.status_code for a in answers) == [201] * STOCK + [409] * (BUYERS - STOCK)
    assert len(set(result["held"].values())) == STOCK
    paid: dict[int, str] = result["paid"]
    level = merchant.get("/api/stock/NODE").json()
    assert level["available"] + level["held"] + level["sold"] == level["on_hand"] == STOCK
    with connect(database_url) as conn:
        confirmed = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM orders WHERE sku = 'NODE' AND state = 'confirmed'"
            ).fetchall()
        }
    assert set(paid.values()) <= confirmed  # no paid order lost
    assert len(confirmed) == level["sold"]  # the store of record agrees with Redis
    assert len(paid) == STOCK and level["sold"] == STOCK, (len(paid), level)
    merchant.close()


async def _clicks(
    url: str, show: str, buyers: list[dict[str, str]], offset: int = 0
) -> dict[int, Answer]:
    """Every buyer's buy click at once; one nginx could not deliver (the node died with it,
    502) is sent again with the same idempotency key, as a page does."""
    path = f"/api/shows/{show}/holds"
    click = {"sku": "NODE", "qty": 1, "idempotency_key": "buy"}
    answers = dict(
        enumerate(await burst(url, [("POST", path, click, b) for b in buyers]), start=offset)
    )
    deadline = time.monotonic() + DEADLINE
    while again := [i for i, a in answers.items() if a.status_code in (502, 503, 504)]:
        assert time.monotonic() < deadline, [answers[i].body for i in again]
        await asyncio.sleep(0.2)
        resent = await burst(url, [("POST", path, click, buyers[i - offset]) for i in again])
        answers.update(zip(again, resent, strict=True))
    return answers


async def _checkouts(
    url: str, buyers: list[dict[str, str]], holds: dict[int, str]
) -> dict[int, str]:
    """Every hold's checkout at once, each sent again (the same body) until it is answered
    with its order: a node that died mid-checkout leaves the order to the recovery of the
    node that holds the duties' lease. Answers buyer -> the id of the order paid."""
    pending = dict(holds)
    paid: dict[int, str] = {}
    deadline = time.monotonic() + DEADLINE
    while pending:
        assert time.monotonic() < deadline, pending
        items = list(pending.items())
        answers = await burst(
            url, [("POST", f"/api/holds/{h}/checkout", CHECKOUT, buyers[i]) for i, h in items]
        )
        for (i, _), answer in zip(items, answers, strict=True):
            if answer.status_code in (200, 201):
                paid[i] = answer.json()["id"]
                del pending[i]
            else:
                assert answer.status_code in (409, 502, 503, 504), answer.body
        if pending:
            await asyncio.sleep(0.5)
    return paid


async def _room(base: str, show: str, buyer: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    token = buyer["Authorization"].split()[1]
    ws = await websockets.connect(
        base.replace("http://", "ws://") + f"/ws/shows/{show}?token={token}"
    )
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
    assert snapshot["type"] == "snapshot", snapshot
    return ws, snapshot
