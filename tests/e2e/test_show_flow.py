"""A whole show in real browsers: the host goes live, viewers watch, ask, buy by card through
Stripe.js, and it ships."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from livesale.cli import main
from livesale.config import Settings
from tests.conftest import LiveServer, stripe_settings
from tests.e2e import viewer as viewers
from tests.localstripe import CARDS, LocalStripe

ARTIFACTS = Path(os.environ.get("LIVESALE_ARTIFACTS", "test-artifacts"))
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

PRODUCTS = [
    {"sku": "LIP-RED", "title": "Velvet Lipstick Red", "price": {"amount": 1990, "currency": "EUR"},
     "stock": 20, "image_url": "/static/img/demo/lip-vlv-red.svg"},
    {"sku": "SRM-C", "title": "Vitamin C Serum", "price": {"amount": 3990, "currency": "EUR"},
     "stock": 10, "image_url": "/static/img/demo/srm-vtc-15.svg"},
    {"sku": "GLS-PCH", "title": "Peach Gloss", "price": {"amount": 1490, "currency": "EUR"},
     "stock": 5, "image_url": "/static/img/demo/lip-gls-pch.svg"},
]  # fmt: skip
ITEM_2 = "SRM-C"

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(900)]

#: Every wait for the pages only catches a hang, on a machine however busy (Playwright's own
#: default is 5 s). How fast a feature reaches viewers: ``scripts/bench_fanout.py``.
DEADLINE = 180.0
expect.set_options(timeout=DEADLINE * 1000)


@pytest.fixture
def browser_server(settings: Settings, localstripe: LocalStripe) -> Any:
    """A shop taking cards (through localstripe) and pay on delivery, offering 127.0.0.1 as its
    only ICE host, with a short post-show grace."""
    shop = stripe_settings(settings, localstripe, "manual")
    live = LiveServer(replace(shop, ice_hosts=("127.0.0.1",), grace_seconds=1)).start()
    yield live
    live.stop()


async def frames_decoded(page: Page) -> int:
    """``framesDecoded`` of the page's WHEP video (getStats inbound-rtp), 0 before it plays."""
    result: int = await page.evaluate(
        """async () => {
            const pc = window.livesale && window.livesale.peerConnection;
            if (!pc) return 0;
            let frames = 0;
            (await pc.getStats()).forEach((s) => {
                if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
            });
            return frames;
        }"""
    )
    return result


async def wait_for_video(page: Page, timeout: float = DEADLINE) -> None:
    """The page's video decodes frames (rising) and has a size."""
    deadline = time.monotonic() + timeout
    first = 0
    while time.monotonic() < deadline:
        frames = await frames_decoded(page)
        width = await page.eval_on_selector("#video", "v => v.videoWidth")
        if first == 0 and frames > 0:
            first = frames
        elif first and frames > first + 10 and width > 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"video did not play: frames={await frames_decoded(page)}")


async def screenshot(page: Page, name: str, size: ViewportSize) -> None:
    """Save a screenshot at ``size`` as a test artifact and check it is not blank."""
    await page.set_viewport_size(size)
    await asyncio.sleep(0.3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"
    png = await page.screenshot(path=str(path))
    colours = await page.evaluate(
        """async (data) => {
            // Decoded from bytes: the page's CSP lets no data: URL load as an image.
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const img = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
            const canvas = new OffscreenCanvas(img.width, img.height);
            const ctx = canvas.getContext("2d");
            ctx.drawImage(img, 0, 0);
            const px = ctx.getImageData(0, 0, img.width, img.height).data;
            const seen = new Set();
            for (let i = 0; i < px.length; i += 4 * 97) {
                seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
            }
            return seen.size;
        }""",
        base64.b64encode(png).decode(),
    )
    assert colours > 20, f"{path} looks blank ({colours} colours)"


PAGE_ERRORS: list[str] = []


def watch_errors(page: Page, who: str) -> None:
    """Collect uncaught script errors of ``page``: the test fails on any."""
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{who}: {error}"))


async def join(browser: Browser, url: str, nickname: str) -> Page:
    page = await browser.new_page(viewport=PHONE)
    watch_errors(page, nickname)
    await viewers.join(page, url, nickname, len(PRODUCTS))
    return page


def card(page: Page, sku: str) -> Any:
    return page.locator(f'#lineup li[data-sku="{sku}"]')


async def test_a_whole_show(
    browser_server: LiveServer,
    localstripe: LocalStripe,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Go live, watch, ask to explain, feature, buy by card with a countdown, end, export the
    order; the card's money is captured when the show ends."""
    server = browser_server
    with server.client(headers={"Authorization": f"Bearer {server.api_key}"}) as merchant:
        assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        show = merchant.post("/api/shows", json={"title": "Friday Glow-Up", "host_name": "Mia"})
        show_id = show.json()["id"]
        lineup = [{"sku": p["sku"], "limit_per_buyer": 2} for p in PRODUCTS]
        assert merchant.put(f"/api/shows/{show_id}/lineup", json=lineup).is_success

    PAGE_ERRORS.clear()
    host = await browser.new_page(viewport=DESKTOP)
    watch_errors(host, "studio")
    await host.goto(show.json()["studio_url"])
    await host.get_by_role("button", name="Go live").click()
    await expect(host.locator("#state")).to_have_text("Live")
    await expect(host.locator("#media-status")).to_have_text("You're live.")
    await expect(host.get_by_role("timer", name="Time on air")).to_have_text(
        re.compile(r"^\d+:\d\d$")
    )

    watch_url = show.json()["watch_url"]
    viewer_a = await join(browser, watch_url, "Ava")
    viewer_b = await join(browser, watch_url, "Bo")
    await asyncio.gather(wait_for_video(viewer_a), wait_for_video(viewer_b))

    # Viewer A asks the host to explain item 2; it tops the studio's queue.
    await card(viewer_a, ITEM_2).get_by_role("button", name="Ask to explain").click()
    top = host.locator("#queue li").first
    await expect(top).to_have_attribute("data-sku", ITEM_2)

    # The host explains it now: both viewers see it featured.
    await top.get_by_role("button", name="Explain now").click()
    for viewer in (viewer_a, viewer_b):
        await expect(card(viewer, ITEM_2)).to_have_class("item featured")
    await expect(host.locator("#queue li.empty")).to_have_count(1)

    # Viewer B buys it: a hold with a countdown, then checkout by card and a confirmation.
    stock_a = card(viewer_a, ITEM_2).locator(".stock")
    await expect(stock_a).to_have_attribute("data-stock", "10")
    await card(viewer_b, ITEM_2).get_by_role("button", name="Buy").click()
    dialog = viewer_b.locator("#checkout-dialog")
    await expect(dialog).to_be_visible()
    countdown = dialog.get_by_role("timer")
    # The 5-minute hold counts down (still inside its first minute: not stuck at 5:00).
    await expect(countdown).to_contain_text(re.compile(r"4:[0-5]\d"))
    await dialog.get_by_label("Name").fill("Bo Lind")
    await dialog.get_by_label("Email").fill("bo@example.com")
    await dialog.get_by_label("Address").fill("1 Harbour Street, Malmö")
    await expect(dialog.get_by_role("radio", name="Card", exact=True)).to_be_checked()
    # The card goes into Stripe.js's card element (localstripe's stand-in draws plain inputs).
    await dialog.get_by_placeholder("number").fill(CARDS["visa"])
    await dialog.get_by_placeholder("exp_month").fill("12")
    await dialog.get_by_placeholder("exp_year").fill("30")
    await dialog.get_by_placeholder("cvc").fill("123")
    await dialog.get_by_placeholder("postal_code").fill("21120")
    await dialog.get_by_role("button", name=re.compile(r"^Pay €39\.90$")).click()
    confirmation = viewer_b.locator("#confirm-dialog")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("Vitamin C Serum")
    with server.client(headers=server.merchant) as merchant:
        [order] = merchant.get("/api/orders", params={"show": show_id}).json()
    assert (order["provider"], order["payment_status"]) == ("stripe", "authorized")
    assert localstripe.intent(order["payment_ref"])["status"] == "requires_capture"
    await expect(viewer_b.locator(".test-mode-banner")).to_have_count(0)

    # Viewer A sees the stock one lower.
    await expect(stock_a).to_have_attribute("data-stock", "9")
    await expect(host.locator("#stat-units")).to_have_text("1")
    await expect(host.locator("#stat-revenue")).to_have_text("€39.90")
    await expect(host.locator("#stat-revenue + span")).to_have_text("revenue")

    for page, name in ((host, "studio"), (viewer_a, "watch")):
        for size in (PHONE, DESKTOP):
            await screenshot(page, name, size)

    # The host ends the show; the order is exported for shipping.
    await host.set_viewport_size(DESKTOP)
    await host.get_by_role("button", name="End show").click()
    await host.locator("#end-dialog").get_by_role("button", name="End show").click()
    await expect(host.locator("#state")).to_have_text("Ended")
    await expect(viewer_a.locator("#state")).to_have_text("Ended")
    # After the end every page says so: no "now explaining", chat read-only, no ask or buy,
    # the buyer's own orders of the show; the studio's camera and microphone are off.
    for viewer in (viewer_a, viewer_b):
        await expect(viewer.locator("#featured")).to_be_hidden()
        await expect(viewer.locator("#chat-input")).to_be_disabled()
        await expect(
            card(viewer, ITEM_2).get_by_role("button", name="Ask to explain")
        ).to_be_disabled()
        await expect(card(viewer, ITEM_2).locator(".featured-badge")).to_have_count(0)
    summary = viewer_b.locator("#my-show-orders")
    await expect(summary).to_contain_text("Your orders from this show")
    await expect(summary).to_contain_text("Vitamin C Serum")
    await expect(viewer_a.locator("#my-show-orders")).to_contain_text("did not buy anything")
    await expect(host.locator("#media-status")).to_have_text(
        "The show has ended; the camera and microphone are off."
    )
    tracks = "document.getElementById('preview').srcObject.getTracks().map(t => t.readyState)"
    assert set(await host.evaluate(tracks)) == {"ended"}
    await expect(host.locator("#lineup button").first).to_be_disabled()

    deadline = time.monotonic() + DEADLINE
    while True:
        capsys.readouterr()
        code = main(["orders", "export", show_id, "--format", "json", "--server", server.url,
                     "--api-key", server.api_key])  # fmt: skip
        out = capsys.readouterr().out
        if code == 0:
            break
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.5)
    exported = json.loads(out)
    text = json.dumps(exported)
    assert "Bo Lind" in text and ITEM_2 in text
    assert exported["unpaid"] == []
    assert localstripe.intent(order["payment_ref"])["status"] == "succeeded"
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert PAGE_ERRORS == []
