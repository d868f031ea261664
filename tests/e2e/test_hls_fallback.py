"""Past the server's WebRTC tier (``--max-webrtc-viewers``) WHEP answers 503 and the watch page
plays the show's recording as live HLS (hls.js in Chromium), and says it is a few seconds
behind; the viewers within the tier stay on WebRTC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e.test_phone import PHONE, feature, go_live, new_show, phone
from tests.e2e.test_show_flow import DEADLINE, screenshot, wait_for_video

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]
expect.set_options(timeout=DEADLINE * 1000)

#: The page's video advances (seconds of media played, read twice some time apart).
CURRENT_TIME = "() => document.getElementById('video').currentTime"


@pytest.fixture
def capped(settings: Settings) -> Iterator[LiveServer]:
    """A shop whose relay serves one WebRTC player; the rest watch over HLS."""
    live = LiveServer(
        replace(settings, payments=("test",), ice_hosts=("127.0.0.1",), max_webrtc_viewers=1)
    ).start()
    yield live
    live.stop()


async def playing(page: Page) -> None:
    """The page's video has a picture and its time advances."""
    await page.wait_for_function("() => document.getElementById('video').videoWidth > 0")
    start = await page.evaluate(CURRENT_TIME)
    await page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {start} + 1"
    )


async def test_past_the_webrtc_cap_the_page_plays_hls(capped: LiveServer, browser: Browser) -> None:
    show = new_show(capped, "Friday Glow-Up")
    await go_live(browser, show, PHONE)
    await feature(capped, show, "SRM-C")

    first = await (await phone(browser, PHONE)).new_page()
    await first.goto(show["watch_url"])
    await wait_for_video(first)
    assert await first.evaluate("window.livesale.videoMode") == "webrtc"
    await expect(first.locator("#state")).to_have_text("Live")

    # The relay is full: a second player is refused with 503 and told when to try again.
    offer = httpx.post(
        f"{capped.url}/whep/{show['id']}",
        content="v=0\r\n",
        headers={"Content-Type": "application/sdp"},
        timeout=30,
    )
    assert offer.status_code == 503, offer.text
    assert offer.headers["Retry-After"]
    assert offer.json()["type"].endswith("/webrtc-full")

    second = await (await phone(browser, PHONE)).new_page()
    hls_requests: list[str] = []
    second.on(
        "request", lambda request: "/hls/" in request.url and hls_requests.append(request.url)
    )
    await second.goto(show["watch_url"])
    await second.wait_for_function("() => window.livesale.videoMode === 'hls'")
    await playing(second)
    await expect(second.locator("#state")).to_have_text("Live, a few seconds behind")
    assert await second.evaluate("window.livesale.peerConnection") is None
    assert any(url.endswith(".m4s") for url in hls_requests), hls_requests
    # The featured card and Buy work the same over HLS.
    buy = second.locator("#featured").get_by_role("button", name="Buy Vitamin C Serum")
    await expect(buy).to_be_visible()
    await screenshot(second, "watch-hls", PHONE)
