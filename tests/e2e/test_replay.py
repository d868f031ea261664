"""After the end the watch page plays the show's recording with a chapter per product the host
explained: a tap on a chapter jumps to where the host featured it, within a segment, and the
product explained there is on the card with Buy, which holds and checks out as live."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser, expect

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e.test_phone import PHONE, feature, go_live, new_show, phone
from tests.e2e.test_show_flow import DEADLINE, screenshot
from tests.e2e.viewer import pay_with_test_card

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]
expect.set_options(timeout=DEADLINE * 1000)

#: Segments are about 2 s: a seek lands on the keyframe that starts one.
SEGMENT = 2.0
CURRENT_TIME = "() => document.getElementById('video').currentTime"


@pytest.fixture
def shop(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(replace(settings, payments=("test",), ice_hosts=("127.0.0.1",))).start()
    yield live
    live.stop()


async def test_the_replay_plays_with_chapters_to_jump_to(
    shop: LiveServer, browser: Browser
) -> None:
    show = new_show(shop, "Friday Glow-Up")
    host = await go_live(browser, show, PHONE)
    await asyncio.sleep(2)
    await feature(shop, show, "LIP-RED")
    await asyncio.sleep(4)
    await feature(shop, show, "SRM-C")
    await asyncio.sleep(4)
    with shop.client(headers=shop.merchant) as merchant:
        assert merchant.post(f"/api/shows/{show['id']}/end").status_code == 200
        replay = merchant.get(f"/api/shows/{show['id']}/replay").json()
    await host.close()
    assert [c["sku"] for c in replay["chapters"]] == ["LIP-RED", "SRM-C"]
    serum = replay["chapters"][1]

    page = await (await phone(browser, PHONE)).new_page()
    await page.goto(show["watch_url"])
    await page.wait_for_function("() => window.livesale.videoMode === 'replay'")
    await expect(page.locator("#state")).to_have_text("Ended")
    await expect(page.locator("#replay-badge")).to_have_text("Replay")
    await page.wait_for_function("() => document.getElementById('video').videoWidth > 0")
    start = await page.evaluate(CURRENT_TIME)
    await page.wait_for_function(f"() => document.getElementById('video').currentTime > {start}")
    chapters = page.locator("#chapters")
    await expect(chapters.get_by_role("button")).to_have_count(2)
    await chapters.get_by_role("button", name="Vitamin C Serum").click()
    await page.wait_for_function(
        f"() => Math.abs(document.getElementById('video').currentTime - {serum['start_s']})"
        f" < {SEGMENT}"
    )
    await screenshot(page, "watch-replay", PHONE)

    # The serum's explanation is playing: its card says so and sells it.
    card = page.locator("#featured")
    await expect(card).to_contain_text("Explained here")
    await expect(card).to_contain_text("Vitamin C Serum")
    await expect(chapters.get_by_role("button", name="Vitamin C Serum")).to_have_attribute(
        "aria-current", "true"
    )
    await card.get_by_role("button", name="Buy Vitamin C Serum").click()
    nickname = page.locator("#nickname-dialog")
    await expect(nickname).to_be_visible()
    await nickname.get_by_role("button", name=re.compile(r"^Continue as Viewer \d{4}$")).click()
    checkout = page.locator("#checkout-dialog")
    await expect(checkout).to_be_visible()
    await expect(checkout.locator("#pay")).to_be_enabled()
    await pay_with_test_card(checkout, "€39.90")
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await screenshot(page, "watch-replay-bought", PHONE)
    with shop.client(headers=shop.merchant) as merchant:
        orders = merchant.get("/api/orders", params={"show": show["id"]}).json()
    assert [(o["sku"], o["qty"], o["state"]) for o in orders] == [("SRM-C", 1, "confirmed")]
