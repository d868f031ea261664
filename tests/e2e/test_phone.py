"""The watch page as a live-shopping app, in Chromium at a phone (390×844), a small phone
(320×640), a phone on its side (844×390) and a desktop (1280×800): the video plays with no
input and fills a portrait screen, the featured product's Buy is on screen without scrolling,
nothing scrolls sideways; the product sheet, checkout in a half sheet over the video, and a
second purchase in one tap. Screenshots of each are saved as artifacts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import websockets
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.e2e.i18n_check import english_left
from tests.e2e.test_show_flow import DEADLINE, screenshot, wait_for_video
from tests.e2e.viewer import pay_with_test_card

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(900)]
expect.set_options(timeout=DEADLINE * 1000)

PHONE: ViewportSize = {"width": 390, "height": 844}
SMALL: ViewportSize = {"width": 320, "height": 640}
SIDEWAYS: ViewportSize = {"width": 844, "height": 390}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SIZES = [PHONE, SMALL, SIDEWAYS, DESKTOP]

PRODUCTS = [
    {"sku": "LIP-RED", "title": "Peony Red", "price": {"amount": 1990, "currency": "EUR"},
     "stock": 20, "image_url": "/static/img/demo/lip-vlv-red.svg",
     "description": "A velvet matte lipstick that stays put for eight hours."},
    {"sku": "SRM-C", "title": "Vitamin C Serum", "price": {"amount": 3990, "currency": "EUR"},
     "stock": 10, "image_url": "/static/img/demo/srm-vtc-15.svg",
     "description": "15 % vitamin C, for a brighter skin in four weeks."},
    {"sku": "GLS-PCH", "title": "Peach Gloss", "price": {"amount": 1490, "currency": "EUR"},
     "stock": 5, "image_url": "/static/img/demo/lip-gls-pch.svg", "description": ""},
]  # fmt: skip
FEATURED = "SRM-C"
#: The merchant's own words, which no translation touches: product titles, the host's name.
TITLES = {str(p["title"]) for p in PRODUCTS} | {"Mia", "livesale"}


@pytest.fixture
def shop(settings: Settings) -> Iterator[LiveServer]:
    """A shop trying livesale out (the test provider, and pay on delivery), offering
    127.0.0.1 as its only ICE host."""
    live = LiveServer(
        replace(settings, payments=("test", "manual"), ice_hosts=("127.0.0.1",))
    ).start()
    yield live
    live.stop()


def new_show(shop: LiveServer, title: str) -> dict[str, Any]:
    with shop.client(headers=shop.merchant) as merchant:
        assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        show = merchant.post("/api/shows", json={"title": title, "host_name": "Mia"}).json()
        lineup = [{"sku": p["sku"], "limit_per_buyer": 3} for p in PRODUCTS]
        assert merchant.put(f"/api/shows/{show['id']}/lineup", json=lineup).is_success
    return show  # type: ignore[no-any-return]


async def go_live(browser: Browser, show: dict[str, Any], size: ViewportSize) -> Page:
    """The host goes live from the studio, on a screen of ``size`` (a portrait one frames the
    camera upright, as a host's phone does)."""
    host = await browser.new_page(viewport=size)
    await host.goto(show["studio_url"])
    await host.get_by_role("button", name="Go live").click()
    await expect(host.locator("#media-status")).to_have_text("You're live.")
    return host


async def feature(shop: LiveServer, show: dict[str, Any], sku: str) -> None:
    """The host features ``sku`` (over the room socket, as the studio does)."""
    ws_base = shop.url.replace("http://", "ws://")
    url = f"{ws_base}/ws/shows/{show['id']}?token={show['host_token']}"
    async with websockets.connect(url) as ws:
        await ws.recv()  # the snapshot
        await ws.send(json.dumps({"type": "feature", "sku": sku}))
        while json.loads(await ws.recv())["type"] != "featured":
            pass


async def phone(browser: Browser, size: ViewportSize, **kw: Any) -> BrowserContext:
    """A browser context of ``size``: a touch phone below the desktop's width."""
    mobile = size["width"] < 900
    return await browser.new_context(viewport=size, is_mobile=mobile, has_touch=mobile, **kw)


#: The share of the viewport the video's picture covers: the element's box as its
#: ``object-fit`` draws the picture in it, clipped to the viewport.
PICTURE_SHARE = """() => {
    const v = document.getElementById("video");
    const box = v.getBoundingClientRect();
    const fit = getComputedStyle(v).objectFit;
    const scale = (fit === "cover" ? Math.max : Math.min)(
        box.width / v.videoWidth, box.height / v.videoHeight);
    const w = v.videoWidth * scale, h = v.videoHeight * scale;
    const left = Math.max(0, box.left + (box.width - w) / 2);
    const top = Math.max(0, box.top + (box.height - h) / 2);
    const right = Math.min(innerWidth, box.left + (box.width + w) / 2);
    const bottom = Math.min(innerHeight, box.top + (box.height + h) / 2);
    return Math.max(0, right - left) * Math.max(0, bottom - top) / (innerWidth * innerHeight);
}"""

#: ``selector`` is inside the viewport and is what a tap at its centre reaches (not covered).
ON_SCREEN = """(node) => {
    const r = node.getBoundingClientRect();
    if (r.width === 0 || r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight)
        return false;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit === node || node.contains(hit);
}"""

#: A node's text as the eye sees it: without its words for screen readers only.
SHOWN_TEXT = """(node) => [...node.childNodes]
    .filter((child) => !child.classList?.contains("sr-only"))
    .map((child) => child.textContent).join("")"""

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= innerWidth"

#: The visible controls smaller than a 44 px touch target, as "tag#id.class 'name' WxH"
#: (a radio or checkbox counts by the label around it).
SMALL_TARGETS = """() => {
    const small = [];
    for (const node of document.querySelectorAll("button, a[href], select, input, textarea")) {
        if (!node.checkVisibility({ visibilityProperty: true })) continue;
        const target = ["radio", "checkbox"].includes(node.type) ? node.closest("label") : node;
        const r = target.getBoundingClientRect();
        if (r.width < 44 || r.height < 44) {
            const name = (node.getAttribute("aria-label") || node.textContent).trim().slice(0, 30);
            small.push(`${node.tagName.toLowerCase()}#${node.id}.${node.className} '${name}' ` +
                `${Math.round(r.width)}x${Math.round(r.height)}`);
        }
    }
    return small;
}"""


async def check_layout(page: Page, size: ViewportSize, upright_camera: bool = True) -> None:
    """What every size must give: no horizontal scrolling, the featured Buy on screen, and on
    a portrait screen (with an upright camera) a picture covering at least 60 % of it."""
    assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"sideways scrolling at {size}"
    assert await page.evaluate(SMALL_TARGETS) == [], f"touch targets under 44 px at {size}"
    buy = page.locator("#featured").get_by_role("button", name=f"Buy {PRODUCTS[1]['title']}")
    await expect(buy).to_be_visible()
    assert await buy.evaluate(ON_SCREEN), f"the featured Buy is off screen or covered at {size}"
    box = await buy.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44
    if upright_camera and size["height"] > size["width"]:
        share = await page.evaluate(PICTURE_SHARE)
        assert share >= 0.6, f"the video covers {share:.0%} of {size}"


async def test_watch_page_at_every_size(shop: LiveServer, browser: Browser) -> None:
    """At each size the page plays with no input, fills a portrait screen with a portrait
    camera, shows the featured Buy without scrolling and never scrolls sideways; the line-up
    sheet, product sheet and checkout fit too."""
    show = new_show(shop, "Friday Glow-Up")
    await go_live(browser, show, PHONE)
    await feature(shop, show, FEATURED)
    for size in SIZES:
        context = await phone(browser, size)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error, seen=problems: seen.append(str(error)))
        await page.goto(show["watch_url"])
        await wait_for_video(page)  # no input of any kind
        await expect(page.locator("dialog[open]")).to_have_count(0)
        await expect(page.locator("#featured")).to_contain_text(PRODUCTS[1]["title"])
        await check_layout(page, size)
        await screenshot(page, "watch-live", size)

        # The line-up: a sheet behind the bag on a phone, a side panel on a desktop.
        bag = page.locator("#bag")
        if size["width"] < 900:
            await expect(bag).to_have_accessible_name("Line-up: 3 items")
            await bag.click()
        panel = page.locator("#lineup-panel")
        await expect(panel.get_by_role("button", name="Buy Peach Gloss")).to_be_visible()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        assert await page.evaluate(SMALL_TARGETS) == [], f"touch targets under 44 px at {size}"
        await screenshot(page, "watch-lineup", size)

        # The product sheet, from the line-up.
        await panel.get_by_role("button", name="Details of Peony Red").click()
        sheet = page.locator("#product-sheet")
        await expect(sheet).to_be_visible()
        await expect(sheet).to_contain_text("stays put for eight hours")
        buy = sheet.get_by_role("button", name="Buy Peony Red")
        await expect(buy).to_be_visible()
        assert await buy.evaluate(ON_SCREEN), f"the sheet's Buy is off screen at {size}"
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        assert await page.evaluate(SMALL_TARGETS) == [], f"touch targets under 44 px at {size}"
        await screenshot(page, "watch-product", size)
        assert problems == []
        await context.close()


async def test_product_sheet_checkout_and_one_tap_repeat(
    shop: LiveServer, browser: Browser
) -> None:
    """Watching first; the nickname at the first Buy, in one tap; a quantity from the product
    sheet; checkout in a half sheet over the video with the amount on Pay; then the next
    purchase in the show takes a single confirming tap."""
    show = new_show(shop, "Friday Glow-Up")
    await go_live(browser, show, PHONE)
    await feature(shop, show, FEATURED)
    context = await phone(browser, PHONE)
    page = await context.new_page()
    await page.goto(show["watch_url"])
    await wait_for_video(page)

    # The featured card opens the product sheet; the quantity goes up to the buyer's limit.
    await page.locator("#featured").get_by_role("button", name="Details of Vitamin C Serum").click()
    sheet = page.locator("#product-sheet")
    await expect(sheet.locator("#product-stock")).to_have_text("10 left · max 3 each")
    more = sheet.get_by_role("button", name="One more")
    for _ in range(4):
        if await more.is_enabled():
            await more.click()
    await expect(sheet.locator("#qty")).to_have_text("3")
    await expect(more).to_be_disabled()
    await sheet.get_by_role("button", name="One fewer").click()
    buy = sheet.locator("#product-buy")
    await expect(buy).to_have_accessible_name("Buy Vitamin C Serum · €79.80")
    assert await buy.evaluate(SHOWN_TEXT) == "Buy · €79.80"
    await sheet.get_by_role("button", name="Buy Vitamin C Serum").click()

    # A watcher is asked for a nickname at the first buy; the suggested one takes one tap.
    nickname = page.locator("#nickname-dialog")
    await expect(nickname).to_be_visible()
    suggested = nickname.get_by_role("button", name=re.compile(r"^Continue as Viewer \d{4}$"))
    await suggested.click()

    checkout = page.locator("#checkout-dialog")
    await expect(checkout).to_be_visible()
    await expect(checkout.locator("#hold-qty")).to_have_text("2")
    # A half sheet: the upper part of the screen still shows the video.
    top = await checkout.evaluate("node => node.getBoundingClientRect().top")
    assert top >= PHONE["height"] * 0.3, f"checkout covers the video (top at {top}px)"
    await screenshot(page, "watch-checkout", PHONE)
    assert await page.evaluate(SMALL_TARGETS) == []
    await pay_with_test_card(checkout, "€79.80")
    confirmation = page.locator("#confirm-dialog")
    await expect(confirmation).to_be_visible()
    await confirmation.get_by_role("button", name="Keep watching").click()

    # The next purchase: Buy on the featured card, then one confirming tap on Pay.
    await page.locator("#featured").get_by_role("button", name="Buy Vitamin C Serum").click()
    await expect(checkout).to_be_visible()
    await expect(checkout.locator("#repeat-box")).to_be_visible()
    await expect(checkout.locator("#repeat-box")).to_contain_text("Ava Berg, 1 Harbour Street")
    await expect(checkout.get_by_label("Name")).to_be_hidden()
    await screenshot(page, "watch-checkout-repeat", PHONE)
    await checkout.get_by_role("button", name="Pay €39.90").click()
    await expect(confirmation).to_be_visible()
    with shop.client(headers=shop.merchant) as merchant:
        orders = merchant.get("/api/orders", params={"show": show["id"]}).json()
    assert sorted((o["qty"], o["state"], o["provider"]) for o in orders) == [
        (1, "confirmed", "test"),
        (2, "confirmed", "test"),
    ]
    await context.close()


async def test_landscape_camera_shown_whole_on_a_portrait_phone(
    shop: LiveServer, browser: Browser
) -> None:
    """A host on a desktop camera (landscape): a portrait phone shows the whole picture,
    centred (not cropped to half its width); a phone on its side fills with it."""
    show = new_show(shop, "Desk Show")
    await go_live(browser, show, DESKTOP)
    await feature(shop, show, FEATURED)
    for size, fit in ((PHONE, "contain"), (SIDEWAYS, "cover")):
        context = await phone(browser, size)
        page = await context.new_page()
        await page.goto(show["watch_url"])
        await wait_for_video(page)
        await expect(page.locator("#stage")).to_have_class(re.compile(r"\bsource-landscape\b"))
        assert await page.eval_on_selector("#video", "v => getComputedStyle(v).objectFit") == fit
        assert await page.eval_on_selector("#video", "v => v.videoWidth > v.videoHeight")
        await check_layout(page, size, upright_camera=False)
        await screenshot(page, "watch-landscape-camera", size)
        await context.close()


async def test_show_in_chinese_and_the_language_switch(shop: LiveServer, browser: Browser) -> None:
    """A browser in Simplified Chinese gets the whole watch page in Chinese (the words of
    Chinese live shopping: 讲解中, 求讲解, 种草, 抢购), money through Intl, and buys; the
    switch in the page turns it to English, and the choice is remembered."""
    show = new_show(shop, "周五直播")
    await go_live(browser, show, PHONE)
    await feature(shop, show, FEATURED)
    context = await phone(browser, PHONE, locale="zh-CN")
    page = await context.new_page()
    await page.goto(show["watch_url"])
    await wait_for_video(page)
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.locator("#state")).to_have_text("直播中")
    featured = page.locator("#featured")
    await expect(featured).to_contain_text("讲解中")
    await expect(featured).to_contain_text("剩 10 件")
    await expect(page.get_by_placeholder("说点什么…")).to_be_visible()
    await expect(page.locator("#bag")).to_have_accessible_name("购物袋：3 件商品")

    await page.locator("#bag").click()
    panel = page.locator("#lineup-panel")
    await panel.get_by_role("button", name="求讲解Peony Red").click()
    nickname = page.locator("#nickname-dialog")
    await expect(nickname).to_contain_text("怎么称呼你？")
    await nickname.get_by_role("button", name=re.compile(r"^以「观众\d{4}」进入$")).click()
    await expect(panel.get_by_role("button", name="求讲解Peony Red")).to_have_text("已求讲解 ✓")
    await expect(panel.get_by_role("button", name="种草Peony Red")).to_be_visible()
    await panel.get_by_role("button", name="关闭").click()

    await featured.get_by_role("button", name="抢购Vitamin C Serum").click()
    checkout = page.locator("#checkout-dialog")
    await expect(checkout.locator("#checkout-title")).to_have_text("结算")
    await checkout.get_by_label("收货人").fill("李娜")
    await checkout.get_by_label("邮箱").fill("li@example.com")
    await checkout.get_by_label("收货地址").fill("上海市黄浦区南京东路 1 号")
    await checkout.get_by_role("radio", name="测试卡（不扣真钱）").check()
    await checkout.get_by_label("测试卡令牌").fill("tok_visa")
    # The documented test tokens are the only English of checkout.
    assert await english_left(page, TITLES | {"English", "tok_visa tok_decline"}) == []
    await checkout.get_by_role("button", name="支付 €39.90").click()
    await expect(page.locator("#confirm-dialog")).to_contain_text("下单成功")
    await page.locator("#confirm-dialog").get_by_role("button", name="继续看直播").click()
    await screenshot(page, "watch-zh-CN", PHONE)
    # No English left but the merchant's own words (product titles, the host's name) and
    # the names of the languages in the switch.
    merchant_words = TITLES | {"English"}
    assert await english_left(page, merchant_words) == []
    await page.locator("#bag").click()
    await page.locator("#lineup-panel").get_by_role("button", name="查看Peony Red详情").click()
    await expect(page.locator("#product-sheet")).to_contain_text("数量")
    assert await english_left(page, merchant_words | {PRODUCTS[0]["description"]}) == []
    await page.locator("#product-sheet").get_by_role("button", name="关闭").click()

    # The switch: English now, and on the next visit.
    await page.get_by_role("combobox", name="语言").select_option("en")
    await expect(page.locator("#state")).to_have_text("Live")
    await page.reload()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#featured")).to_contain_text("Now explaining")
    await context.close()
