"""The pages pass axe-core (WCAG 2 A/AA and best practice) in Chromium with nothing serious or
critical left: the landing page, a live show's watch page on a phone (with checkout open too),
the studio of a live show, and the buyer's orders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from livesale.config import Settings, in_ci
from tests.conftest import LiveServer
from tests.e2e import axe, viewer
from tests.e2e.test_phone import feature
from tests.e2e.test_show_flow import DESKTOP, PHONE, PRODUCTS

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]

#: Waits on the pages only catch a hang, however busy the machine (as in test_show_flow).
DEADLINE = 180.0
expect.set_options(timeout=DEADLINE * 1000)

BUY = re.compile(r"^Buy")
DETAILS = re.compile(r"^Details of")


@pytest.fixture(autouse=True)
def axe_installed() -> None:
    if not axe.installed():
        if in_ci():
            pytest.fail("axe-core is missing: scripts/test installs it")
        pytest.skip("axe-core is not installed (scripts/test installs it with npm)")


@pytest.fixture
def shop(settings: Settings) -> Iterator[LiveServer]:
    """A shop trying livesale out, as ``--demo`` sets it up: pay on delivery and the test
    provider (so every page carries the test-mode banner), video on 127.0.0.1."""
    live = LiveServer(
        replace(settings, payments=("manual", "test"), ice_hosts=("127.0.0.1",))
    ).start()
    yield live
    live.stop()


def new_show(server: LiveServer, title: str, **extra: Any) -> dict[str, Any]:
    """A show holding :data:`PRODUCTS` in its line-up (the catalogue imported once)."""
    with server.client(headers=server.merchant) as merchant:
        if not merchant.get("/api/products").json():
            assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        show: dict[str, Any] = merchant.post(
            "/api/shows", json={"title": title, "host_name": "Mia", **extra}
        ).json()
        lineup = [{"sku": p["sku"], "limit_per_buyer": 2} for p in PRODUCTS]
        assert merchant.put(f"/api/shows/{show['id']}/lineup", json=lineup).is_success
    return show


async def go_live(browser: Browser, show: dict[str, Any]) -> Page:
    """The host's studio, live with Chromium's fake camera and microphone."""
    host = await browser.new_page(viewport=DESKTOP)
    await host.goto(show["studio_url"])
    await host.get_by_role("button", name="Go live").click()
    await expect(host.locator("#state")).to_have_text("Live")
    await expect(host.locator("#media-status")).to_have_text("You're live.")
    return host


async def open_watch(page: Page, url: str) -> None:
    """Open a show's watch page, sign in (at the chat, as a watcher does) and open the
    line-up."""
    await viewer.join(page, url, "Ava", len(PRODUCTS))


async def wait_for_video(page: Page) -> None:
    """A video of the page has frames (the show is playing)."""
    await page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some((v) => v.videoWidth > 0)",
        timeout=DEADLINE * 1000,
    )


async def assert_accessible(page: Page, what: str) -> None:
    """axe finds nothing serious or critical on ``page``; the rest is printed for the log."""
    violations = await axe.audit(page)
    print(f"{what}: {axe.describe(violations)}")
    bad = axe.serious(violations)
    assert not bad, f"{what} has serious accessibility violations:\n{axe.describe(bad)}"


async def test_landing_page(shop: LiveServer, browser: Browser) -> None:
    """The landing page with a live show and an upcoming one."""
    live = new_show(shop, "Friday Glow-Up")
    with shop.client(headers=shop.merchant) as merchant:
        assert merchant.post(f"/api/shows/{live['id']}/start").status_code == 200
    new_show(shop, "Sunday Skincare", scheduled_at="2031-06-01T18:00:00Z")
    page = await browser.new_page(viewport=PHONE)
    await page.goto(shop.url + "/")
    await expect(page.locator("li.show")).to_have_count(2)
    await assert_accessible(page, "landing page")


async def test_watch_page_live(shop: LiveServer, browser: Browser) -> None:
    """A live show's watch page on a phone, the video playing: as it opens (watching, the
    featured product's card), with the line-up sheet open, with the product sheet open, and
    with checkout open over the video."""
    show = new_show(shop, "Friday Glow-Up")
    await go_live(browser, show)
    await feature(shop, show, PRODUCTS[1]["sku"])
    page = await browser.new_page(viewport=PHONE)
    await page.goto(show["watch_url"])
    await wait_for_video(page)
    await expect(page.locator("#featured")).to_be_visible()
    await assert_accessible(page, "watch page (live, watching)")
    await viewer.sign_in(page, "Ava")
    await viewer.open_lineup(page)
    await assert_accessible(page, "watch page (line-up open)")
    await page.locator("#lineup-panel").get_by_role("button", name=DETAILS).first.click()
    await expect(page.locator("#product-sheet")).to_be_visible()
    await assert_accessible(page, "watch page (product sheet open)")
    await page.locator("#product-sheet").get_by_role("button", name=BUY).click()
    await expect(page.locator("#checkout-dialog[open]")).to_be_visible()
    await assert_accessible(page, "watch page (checkout open)")


async def test_studio_page_live(shop: LiveServer, browser: Browser) -> None:
    """The studio of a live show, the preview playing."""
    show = new_show(shop, "Friday Glow-Up")
    host = await go_live(browser, show)
    await wait_for_video(host)
    await assert_accessible(host, "studio page (live)")


async def test_orders_page(shop: LiveServer, browser: Browser) -> None:
    """The buyer's orders page holding one paid order."""
    show = new_show(shop, "Friday Glow-Up")
    with shop.client(headers=shop.merchant) as merchant:
        assert merchant.post(f"/api/shows/{show['id']}/start").status_code == 200
    page = await browser.new_page(viewport=PHONE)
    await open_watch(page, show["watch_url"])
    token = await page.evaluate("JSON.parse(localStorage.getItem('livesale.viewer')).token")
    viewer.buy_by_api(shop.url, token, show["id"], str(PRODUCTS[0]["sku"]))
    await page.goto(shop.url + "/orders")
    await expect(page.locator("#orders li.order-card")).to_have_count(1)
    await assert_accessible(page, "orders page")


async def test_audit_names_what_fails(browser: Browser) -> None:
    """The audit itself: a picture without a text and a button without a name are reported,
    critical, with their targets and help in the description."""
    page = await browser.new_page()
    await page.set_content(
        '<!doctype html><html lang=en><title>t</title><main><h1>t</h1><img src="/x.png">'
        "<button></button></main></html>"
    )
    found = axe.serious(await axe.audit(page))
    assert {v["id"]: v["impact"] for v in found} == {
        "image-alt": "critical",
        "button-name": "critical",
    }
    text = axe.describe(found)
    assert "image-alt (critical)" in text and "img" in text and "button" in text
    assert await axe.audit(page, exclude=["img", "button"]) == []
