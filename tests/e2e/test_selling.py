"""The room shows selling as it happens, in Chromium: a sale ticker that names the item and
never the buyer, units-left bars, Notify me on a sold-out item, told when units return, and
the merchant's stock changes from the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from playwright.async_api import Browser, expect

from livesale.cli import main
from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e.test_payments import PHONE, join, page_problems
from tests.room.conftest import SKUS, make_show, new_viewer

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(300)]

expect.set_options(timeout=180_000)


@pytest.fixture
def shop(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(replace(settings, payments=("test",))).start()
    yield live
    live.stop()


async def test_sales_ticker_units_bar_and_notify_me(shop: LiveServer, browser: Browser) -> None:
    show = make_show(shop.url, shop.api_key, stock=2)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await join(page, shop, show.id)
    item = page.locator(f'#lineup li[data-sku="{SKUS[1]}"]')
    bar = item.locator(".units-bar span")
    assert await bar.evaluate("node => node.style.width") == "100%"

    _, token = new_viewer(shop.url, "Zoe")
    other = httpx.Client(
        base_url=shop.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    holds = [
        other.post(
            f"/api/shows/{show.id}/holds",
            json={"sku": SKUS[1], "qty": 1, "idempotency_key": f"k{n}"},
        ).json()
        for n in range(2)
    ]
    paid = other.post(
        f"/api/holds/{holds[0]['hold_id']}/checkout",
        json={
            "payment": {"provider": "test", "token": "tok_visa"},
            "shipping": {"name": "Zoe", "address": "1 Quay", "email": "zoe@example.com"},
        },
    )
    assert paid.status_code == 201, paid.text
    ticker = page.locator("#ticker")
    await expect(ticker).to_have_text(f"Someone just bought Item {SKUS[1]}")
    await expect(ticker).not_to_contain_text("Zoe")

    # Both units are gone (one sold, one held): Notify me instead of Buy.
    notify = item.get_by_role("button", name=f"Notify me when Item {SKUS[1]} is back")
    await notify.click()
    await expect(notify).to_have_attribute("aria-pressed", "true")
    assert await bar.evaluate("node => node.style.width") == "0%"
    released = other.delete(f"/api/holds/{holds[1]['hold_id']}")
    assert released.status_code == 200, released.text
    await expect(page.locator("#toast")).to_have_text(f"Item {SKUS[1]} is back — 1 left")
    await expect(item.get_by_role("button", name=f"Buy Item {SKUS[1]}")).to_be_enabled()
    other.close()

    # The merchant counts the shelf again from the CLI: the page shows it, as it does a sale.
    other_item = page.locator(f'#lineup li[data-sku="{SKUS[2]}"] .stock')
    await expect(other_item).to_contain_text("2 left")
    args = ["--server", shop.url, "--api-key", shop.api_key]
    assert main(["stock", "set", SKUS[2], "7", *args]) == 0
    await expect(other_item).to_contain_text("7 left")
    assert problems == []
