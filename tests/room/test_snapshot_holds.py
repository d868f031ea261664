"""The snapshot carries the viewer's own live holds, and nobody else's."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.room.conftest import Connect, ShowSetup, new_viewer


async def test_snapshot_lists_own_live_holds(
    server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """A reconnecting buyer finds its live hold in the snapshot; others and the host don't."""
    _, buyer = new_viewer(server.url, "buyer")
    sku = show.skus[0]
    made = httpx.post(
        f"{server.url}/api/shows/{show.id}/holds",
        json={"sku": sku, "qty": 2, "idempotency_key": "tap-1"},
        headers={"Authorization": f"Bearer {buyer}"},
    )
    assert made.status_code == 201, made.text
    hold = made.json()
    mine = await connect(show, buyer)
    assert mine.snapshot["holds"] == [hold]
    other = await connect(show, new_viewer(server.url, "other")[1])
    assert other.snapshot["holds"] == []
    host = await connect(show, show.host_token)
    assert host.snapshot["holds"] == []
    released = httpx.delete(
        f"{server.url}/api/holds/{hold['hold_id']}", headers={"Authorization": f"Bearer {buyer}"}
    )
    assert released.status_code in (200, 204), released.text
    again = await connect(show, buyer)
    assert again.snapshot["holds"] == []
