"""The pages run under their Content-Security-Policy in Chromium: a show's normal flow (go live,
watch the video, chat, ask, feature, buy by card through Stripe.js, end) breaks no directive,
and an inline script, which the policy forbids, is both refused and seen."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from livesale.config import Settings
from tests.conftest import LiveServer, stripe_settings
from tests.e2e.test_payments import buy, fill_card
from tests.e2e.test_show_flow import DESKTOP, PHONE, PRODUCTS, wait_for_video
from tests.e2e.viewer import close_lineup, join, open_lineup
from tests.localstripe import CARDS, LocalStripe

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]

#: Waits on the pages only catch a hang, however busy the machine (as in test_show_flow).
expect.set_options(timeout=180_000)

#: Runs in every document before its own scripts (Playwright adds it outside the page's CSP):
#: each violation is kept in ``window.__csp`` and said on the console.
RECORD = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const seen = `${event.effectiveDirective} ${event.blockedURI || "inline"} ${event.sourceFile}`;
  window.__csp.push(seen);
  console.error(`CSP violation: ${seen}`);
});
"""


@pytest.fixture
def card_shop(settings: Settings, localstripe: LocalStripe) -> Iterator[LiveServer]:
    """A shop taking cards (localstripe) and pay on delivery, live video on 127.0.0.1."""
    shop = stripe_settings(settings, localstripe, "manual")
    live = LiveServer(replace(shop, ice_hosts=("127.0.0.1",))).start()
    yield live
    live.stop()


async def recorded(browser: Browser, who: str, complaints: list[str], **options: object) -> Page:
    """A page whose CSP violations, CSP console lines and script errors go to ``complaints``."""
    page = await browser.new_page(**options)  # type: ignore[arg-type]
    await page.add_init_script(RECORD)

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "CSP violation" in message.text:
            complaints.append(f"{who}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: complaints.append(f"{who}: {error}"))
    return page


async def test_normal_flow_breaks_no_directive(
    card_shop: LiveServer, localstripe: LocalStripe, browser: Browser
) -> None:
    """Studio and watch pages through a show: no CSP violation on either, card checkout
    included; an injected inline script is refused and reported."""
    server = card_shop
    with server.client(headers=server.merchant) as merchant:
        assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        created = merchant.post("/api/shows", json={"title": "Policy", "host_name": "Mia"})
        show = created.json()
        lineup = [{"sku": p["sku"]} for p in PRODUCTS]
        assert merchant.put(f"/api/shows/{show['id']}/lineup", json=lineup).is_success

    complaints: list[str] = []
    host = await recorded(browser, "studio", complaints, viewport=DESKTOP)
    await host.goto(show["studio_url"])
    await host.get_by_role("button", name="Go live").click()
    await expect(host.locator("#media-status")).to_have_text("You're live.")

    viewer = await recorded(browser, "watch", complaints, viewport=PHONE)
    await join(viewer, show["watch_url"], "Ava", len(PRODUCTS))
    await expect(viewer.locator("#lineup li.item img").first).to_have_js_property("complete", True)
    await wait_for_video(viewer)

    await close_lineup(viewer)  # the chat is under the sheet
    await viewer.get_by_label("Say something").fill("hello")
    await viewer.get_by_role("button", name="Send", exact=True).click()
    await expect(host.locator("#chat")).to_contain_text("hello")
    await viewer.get_by_role("button", name="Send a heart").click()
    await open_lineup(viewer)
    item = viewer.locator(f'#lineup li[data-sku="{PRODUCTS[1]["sku"]}"]')
    await item.get_by_role("button", name="Ask to explain").click()
    await host.locator("#queue li").first.get_by_role("button", name="Explain now").click()
    await expect(item).to_have_class("item featured")

    dialog = await buy(viewer, PRODUCTS[1]["sku"])
    await fill_card(dialog, CARDS["visa"])
    await dialog.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await expect(viewer.locator("#confirm-dialog")).to_be_visible()

    await host.get_by_role("button", name="End show").click()
    await host.locator("#end-dialog").get_by_role("button", name="End show").click()
    await expect(viewer.locator("#state")).to_have_text("Ended")
    await asyncio.sleep(0.5)  # a late violation event has its turn
    assert complaints == []
    for page in (host, viewer):
        assert await page.evaluate("window.__csp") == []

    # The check can fail: an inline script, which no page has, is refused and reported.
    await viewer.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__ran = true";
            document.head.append(script);
        }"""
    )
    await viewer.wait_for_function("window.__csp.length > 0")
    assert await viewer.evaluate("window.__ran") is None
    [violation] = await viewer.evaluate("window.__csp")
    assert violation.startswith("script-src-elem inline"), violation
