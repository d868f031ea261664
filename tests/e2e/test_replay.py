"""After the end the watch page plays the show's recording with a chapter per product the host
explained: a tap on a chapter jumps to where the host featured it, within a segment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser, expect

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e.test_phone import PHONE, feature, go_live, new_show, phone
from tests.e2e.test_show_flow import DEADLINE, screenshot

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
