"""The buyer's orders page in Chromium: a buyer who joined a show on this device finds the
order there, and once the merchant ships the parcel, its carrier and tracking number."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from playwright.async_api import Browser, expect

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e import viewer as viewers
from tests.e2e.test_payments import PHONE, join, page_problems
from tests.room.conftest import SKUS, make_show

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(300)]

expect.set_options(timeout=180_000)


@pytest.fixture
def shop(settings: Settings) -> Iterator[LiveServer]:
    """A shop taking test payments whose shows close a second after they end."""
    live = LiveServer(replace(settings, payments=("test",), grace_seconds=1)).start()
    yield live
    live.stop()


async def test_orders_page_shows_the_parcels_tracking(shop: LiveServer, browser: Browser) -> None:
    show = make_show(shop.url, shop.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await join(page, shop, show.id)
    token = await page.evaluate("JSON.parse(localStorage.getItem('livesale.viewer')).token")
    merchant = httpx.Client(base_url=shop.url, headers=shop.merchant, timeout=30)
    viewers.buy_by_api(shop.url, token, show.id, SKUS[0], qty=2)

    await page.goto(f"{shop.url}/orders")
    card = page.locator("#orders li.order-card")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text(f"2 × Item {SKUS[0]}")
    await expect(card.locator(".badge")).to_have_text("Paid")

    assert merchant.post(f"/api/shows/{show.id}/end").status_code == 200
    deadline = time.monotonic() + 60
    while (batch := merchant.get(f"/api/shows/{show.id}/fulfilment").json())["state"] != "ready":
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    (parcel,) = batch["parcels"]
    shipped = merchant.post(
        f"/api/shows/{show.id}/shipments",
        json=[{"parcel_id": parcel["id"], "carrier": "SF Express", "tracking_number": "SF10042"}],
    )
    assert shipped.status_code == 200, shipped.text
    await page.reload()
    await expect(card.locator(".badge")).to_have_text("Shipped")
    await expect(card.locator(".tracking-number")).to_have_text("SF10042")
    await expect(card).to_contain_text("SF Express")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    merchant.close()
    assert problems == []
