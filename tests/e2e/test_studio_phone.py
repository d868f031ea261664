"""The host's studio in Chromium on a phone and a desktop: tabs with one panel at a time on a
phone, everything on one screen on a desktop, a refused host token said first, touch-sized
controls named with their item, no sideways scrolling, and the studio in Simplified Chinese."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.conftest import LiveServer
from tests.e2e.test_payments import page_problems

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]

#: Waits on the pages only catch a hang, however busy the machine.
expect.set_options(timeout=180_000)

ARTIFACTS = Path(os.environ.get("LIVESALE_ARTIFACTS", "test-artifacts")) / "phone"
PHONE: ViewportSize = {"width": 390, "height": 844}
SMALL: ViewportSize = {"width": 320, "height": 640}
LANDSCAPE: ViewportSize = {"width": 844, "height": 390}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

LIPSTICK = "/static/img/demo/lip-vlv-red.svg"
SERUM = "/static/img/demo/srm-vtc-15.svg"
GLOSS = "/static/img/demo/lip-gls-pch.svg"
PRODUCTS = [
    {"sku": "LIP-VLV", "title": "Velvet Matte Lipstick", "stock": 20,
     "price": {"amount": 12900, "currency": "CNY"}, "image_url": LIPSTICK},
    {"sku": "SRM-VTC", "title": "Vitamin C Brightening Serum with a Rather Long Name", "stock": 8,
     "price": {"amount": 25900, "currency": "CNY"}, "image_url": SERUM},
    {"sku": "GLS-PCH", "title": "Peach Gloss", "stock": 5,
     "price": {"amount": 8900, "currency": "CNY"}, "image_url": GLOSS},
]  # fmt: skip
TABS = ["Camera", "Line-up", "Requests", "Chat", "Stats"]
PANELS = ["camera-panel", "lineup-panel", "requests-panel", "chat-panel", "stats-panel"]


@dataclass
class Studio:
    show_id: str
    url: str
    host_token: str


def make_studio(server: LiveServer, *, live: bool = True) -> Studio:
    """A show with :data:`PRODUCTS` in its line-up (live unless told), and its studio link."""
    with httpx.Client(base_url=server.url, headers=server.merchant, timeout=30) as merchant:
        assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        created = merchant.post("/api/shows", json={"title": "Friday Glow-Up", "host_name": "Mia"})
        show = created.json()
        lineup = [{"sku": p["sku"]} for p in PRODUCTS]
        assert merchant.put(f"/api/shows/{show['id']}/lineup", json=lineup).is_success
        if live:
            assert merchant.post(f"/api/shows/{show['id']}/start").status_code == 200
    return Studio(show["id"], show["studio_url"], show["host_token"])


async def no_sideways_scroll(page: Page, where: str) -> None:
    overflow = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], f"{where}: scrollWidth {overflow[0]} > {overflow[1]}"


async def save(page: Page, name: str) -> str:
    """A screenshot of ``page`` as a test artifact; its file name."""
    size = page.viewport_size
    assert size is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    file = f"{name}-{size['width']}x{size['height']}.png"
    await page.evaluate("document.fonts.ready.then(() => true)")
    await asyncio.sleep(0.2)  # let a layout change paint
    await page.screenshot(path=str(ARTIFACTS / file))
    return file


async def small_targets(page: Page) -> list[str]:
    """The visible buttons, tabs, links and selects smaller than 44 × 44 CSS pixels."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("button, select, a[href], [role=tab]")]
            .filter((n) => n.getClientRects().length && !n.closest("dialog:not([open])"))
            .map((n) => [n, n.getBoundingClientRect()])
            .filter(([n, r]) => r.width < 44 || r.height < 44)
            .map(([n, r]) => `${n.tagName} ${n.getAttribute("aria-label") || n.textContent.trim()}`
                + ` ${Math.round(r.width)}x${Math.round(r.height)}`)"""
    )
    return found


async def visible_panels(page: Page) -> list[str]:
    ids: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll(".studio > section.panel")]
            .filter((n) => n.getClientRects().length).map((n) => n.id)"""
    )
    return ids


async def open_studio(page: Page, studio: Studio) -> None:
    await page.goto(studio.url)
    await expect(page.locator("#lineup li.row")).to_have_count(len(PRODUCTS))


async def test_the_studio_on_a_phone_is_tabs(server: LiveServer, browser: Browser) -> None:
    """At 390 × 844 the studio is a tab list (camera, line-up, requests, chat, stats) with one
    panel at a time; the arrow keys move between tabs; Feature works from the line-up tab; the
    timer stays in the header; every control is at least 44 px."""
    studio = make_studio(server)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await open_studio(page, studio)

    tablist = page.get_by_role("tablist", name="Studio")
    await expect(tablist).to_be_visible()
    tabs = tablist.get_by_role("tab")
    await expect(tabs).to_have_count(len(TABS))
    for name, panel in zip(TABS, PANELS, strict=True):
        tab = page.get_by_role("tab", name=name)
        await tab.click()
        await expect(tab).to_have_attribute("aria-selected", "true")
        await expect(page.get_by_role("tabpanel")).to_have_count(1)
        await expect(page.locator(f"#{panel}")).to_be_visible()
        await expect(page.locator(f"#{panel}")).to_have_attribute("role", "tabpanel")
        assert await visible_panels(page) == [panel]
        for other in PANELS:
            if other != panel:
                await expect(page.locator(f"#{other}")).to_be_hidden()
        await expect(tablist).to_be_in_viewport()
        assert await small_targets(page) == [], name

    # The keyboard: arrows move and wrap, Home and End jump; the focus follows the selection.
    await page.get_by_role("tab", name="Camera").click()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="Line-up")).to_be_focused()
    await expect(page.get_by_role("tab", name="Line-up")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#lineup-panel")).to_be_visible()
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")
    await expect(page.get_by_role("tab", name="Stats")).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Home")
    await expect(page.get_by_role("tab", name="Camera")).to_be_focused()
    await page.keyboard.press("End")
    await expect(page.get_by_role("tab", name="Stats")).to_be_focused()
    await expect(page.locator("#camera-panel")).to_be_hidden()

    # Feature from the line-up tab: the button is named with its item.
    await page.get_by_role("tab", name="Line-up").click()
    await page.get_by_role("button", name="Feature Velvet Matte Lipstick", exact=True).click()
    row = page.locator('#lineup li[data-sku="LIP-VLV"]')
    await expect(row).to_have_class("row featured")
    await expect(row.get_by_role("button")).to_have_accessible_name(
        "Unfeature Velvet Matte Lipstick"
    )
    lineup = httpx.get(f"{server.url}/api/shows/{studio.show_id}/lineup", timeout=30).json()
    assert lineup["featured"] == "LIP-VLV"

    # The show is live: its time on air shows in the header, above the tabs.
    timer = page.get_by_role("timer", name="Time on air")
    await expect(timer).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(timer).to_be_in_viewport()
    timer_box = await timer.bounding_box()
    tabs_box = await tablist.bounding_box()
    assert timer_box and tabs_box and timer_box["y"] < tabs_box["y"]
    assert problems == []


async def test_the_studio_fits_every_screen(server: LiveServer, browser: Browser) -> None:
    """No sideways scrolling at 320 × 640, 390 × 844, 844 × 390 and 1280 × 800 on any tab; at
    320 × 640 the tabs, the selected panel and Go live / End show are still on screen; at
    1280 × 800 every panel shows and the chat is on screen without scrolling the page."""
    studio = make_studio(server)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await open_studio(page, studio)
    # A request and a long chat line, so that the panels have rows to lay out.
    await page.get_by_role("tab", name="Chat").click()
    await page.get_by_label("Say something to viewers").fill(
        "Welcome everyone! Today: the velvet lipstick and a serum " + "x" * 60
    )
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#chat li.row")).to_have_count(1)
    shots: list[str] = []

    for size in (SMALL, PHONE, LANDSCAPE):
        await page.set_viewport_size(size)
        where = f"{size['width']}x{size['height']}"
        await expect(page.get_by_role("tablist")).to_be_visible()
        for name, panel in zip(TABS, PANELS, strict=True):
            await page.get_by_role("tab", name=name).click()
            await expect(page.locator(f"#{panel}")).to_be_visible()
            await no_sideways_scroll(page, f"{where} {name}")
            await expect(page.get_by_role("tablist")).to_be_in_viewport()
            assert await small_targets(page) == [], f"{where} {name}"
            if name in ("Line-up", "Chat"):
                shots.append(await save(page, f"studio-{name.lower()}"))
        await expect(page.get_by_role("button", name="End show")).to_be_in_viewport()
        await expect(page.get_by_role("timer", name="Time on air")).to_be_in_viewport()
    # Still usable at 320 × 640: the line-up's Feature button is on screen in its tab.
    await page.set_viewport_size(SMALL)
    await page.get_by_role("tab", name="Line-up").click()
    await expect(
        page.get_by_role("button", name="Feature Velvet Matte Lipstick", exact=True)
    ).to_be_in_viewport()

    await page.set_viewport_size(DESKTOP)
    await expect(page.get_by_role("tablist")).to_be_hidden()
    await expect(page.get_by_role("tabpanel")).to_have_count(0)
    assert await visible_panels(page) == PANELS
    await no_sideways_scroll(page, "1280x800")
    assert await small_targets(page) == []
    chat = await page.locator("#chat-panel").bounding_box()
    assert chat is not None
    assert chat["x"] >= 0 and chat["y"] >= 0
    assert chat["x"] + chat["width"] <= DESKTOP["width"]
    assert chat["y"] + chat["height"] <= DESKTOP["height"]
    await expect(page.get_by_label("Say something to viewers")).to_be_in_viewport()
    assert await page.evaluate("window.scrollY") == 0
    # Back on a phone, the tab chosen before is still the one shown.
    shots.append(await save(page, "studio"))
    await page.set_viewport_size(PHONE)
    await expect(page.get_by_role("tab", name="Line-up")).to_have_attribute("aria-selected", "true")
    assert await visible_panels(page) == ["lineup-panel"]
    print("screenshots:", ", ".join(shots))
    assert problems == []


async def test_a_wrong_host_token_is_said_first(server: LiveServer, browser: Browser) -> None:
    """At 390 × 844 a refused host token (mistyped, or replaced since) is said first and in
    plain words, over the whole studio; the right one then opens it."""
    studio = make_studio(server)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await page.goto(f"{server.url}/studio/{studio.show_id}#token=host_wrong")
    dialog = page.get_by_role("dialog", name="Host token")
    await expect(dialog).to_be_visible()
    problem = dialog.get_by_role("alert")
    await expect(problem).to_have_text(
        "This host token is wrong, or it was replaced by a new one. Open the newest studio"
        " link, or paste the new token below."
    )
    await expect(problem).to_be_in_viewport()
    first = await dialog.evaluate("d => d.querySelector('form').firstElementChild.id")
    assert first == "token-problem"
    shots = [await save(page, "studio-wrong-token")]
    await no_sideways_scroll(page, "wrong token")
    await dialog.get_by_role("textbox", name="Host token").fill(studio.host_token)
    await page.get_by_role("button", name="Open studio").click()
    await expect(page.locator("#lineup li.row")).to_have_count(len(PRODUCTS))
    await expect(problem).to_be_hidden()
    print("screenshots:", ", ".join(shots))
    assert problems == []


async def test_the_studio_in_simplified_chinese(server: LiveServer, browser: Browser) -> None:
    """With the browser in Simplified Chinese the studio's words and controls' names are
    Chinese (开播, 下播, 讲解, 求讲解) and its English words are gone; the language switch in
    the header turns it back to English."""
    studio = make_studio(server, live=False)
    context = await browser.new_context(locale="zh-CN", viewport=PHONE)
    page = await context.new_page()
    problems = page_problems(page)
    await open_studio(page, studio)
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.get_by_role("button", name="开播")).to_be_visible()
    await expect(page.get_by_role("button", name="下播")).to_be_visible()
    await expect(page.locator("#state")).to_have_text("未开播")
    for name in ("镜头", "商品", "求讲解", "评论", "数据"):
        await expect(page.get_by_role("tab", name=name)).to_be_visible()
    await page.get_by_role("tab", name="商品").click()
    feature = page.get_by_role("button", name="讲解 Velvet Matte Lipstick", exact=True)
    await expect(feature).to_have_text("讲解")
    await expect(page.locator('#lineup li[data-sku="LIP-VLV"] .meta')).to_contain_text("库存 20")
    await feature.click()
    await expect(page.locator('#lineup li[data-sku="LIP-VLV"] .featured-badge')).to_have_text(
        "讲解中"
    )
    await page.get_by_role("tab", name="求讲解").click()
    await expect(page.locator("#queue")).to_have_text("还没有人求讲解。")
    english = ["Go live", "End show", "Camera", "Line-up", "Requests", "Chat", "Stats",
               "Feature", "in stock", "want", "No requests", "Slow mode", "Send", "viewers",
               "revenue", "Time on air", "Studio"]  # fmt: skip
    for name in ("镜头", "商品", "求讲解", "评论", "数据"):
        await page.get_by_role("tab", name=name).click()
        words: str = await page.evaluate(
            """() => document.body.innerText + " " + [...document.querySelectorAll(
                "[aria-label], [placeholder], [title]")].map((n) => [n.getAttribute("aria-label"),
                n.getAttribute("placeholder")].join(" ")).join(" ") + " " + document.title"""
        )
        words = words.replace("Velvet Matte Lipstick", "").replace("Friday Glow-Up", "")
        for word in english:
            assert word not in words, f"{word!r} is still English on the {name} tab"
    shots = [await save(page, "studio-zh-CN")]

    switch = page.get_by_role("combobox", name="语言")
    await expect(switch).to_have_value("zh-CN")
    header = await page.locator(".studio-head").bounding_box()
    box = await switch.bounding_box()
    assert header and box and box["y"] < header["y"] + header["height"]
    await switch.select_option("en")
    await expect(page.get_by_role("button", name="Go live")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    print("screenshots:", ", ".join(shots))
    await context.close()
    assert problems == []
