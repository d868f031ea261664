"""The landing page and the page of an unknown show in Chromium: live shows with a cover, the
viewers watching and the start time, upcoming ones with their time, in the app's dark theme,
at every screen size, in English and Simplified Chinese; and the buyer's orders in Chinese."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
import websockets
from playwright.async_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.e2e.test_payments import page_problems
from tests.e2e.test_studio_phone import DESKTOP, LANDSCAPE, PHONE, SMALL, no_sideways_scroll, save
from tests.e2e.viewer import buy_by_api
from tests.room.conftest import SKUS, make_show, new_viewer, ws_url

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(600)]

expect.set_options(timeout=180_000)

#: Only catches a hang: the room reports its presence once a second.
DEADLINE = 180.0
LIPSTICK = "/static/img/demo/lip-vlv-red.svg"
SERUM = "/static/img/demo/srm-vtc-15.svg"
UPCOMING_AT = "2030-06-01T18:30:00+00:00"

PRODUCTS = [
    {"sku": "LIP-VLV", "title": "Velvet Matte Lipstick", "stock": 20,
     "price": {"amount": 12900, "currency": "CNY"}, "image_url": LIPSTICK},
    {"sku": "SRM-VTC", "title": "Vitamin C Serum", "stock": 8,
     "price": {"amount": 25900, "currency": "CNY"}, "image_url": SERUM},
    {"sku": "NO-PIC", "title": "Mystery Box", "stock": 8,
     "price": {"amount": 5900, "currency": "CNY"}},
]  # fmt: skip


def make_shows(server: LiveServer) -> dict[str, Any]:
    """Three shows: "Friday Glow-Up" live (line-up lipstick, serum), "Serum Night" live
    (lipstick, serum) and "Sunday Mystery" upcoming (only the item without an image)."""
    made: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, headers=server.merchant, timeout=30) as merchant:
        assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
        for title, skus, live, at in (
            ("Sunday Mystery", ["NO-PIC"], False, UPCOMING_AT),
            ("Serum Night", ["LIP-VLV", "SRM-VTC"], True, None),
            ("Friday Glow-Up", ["LIP-VLV", "SRM-VTC"], True, None),
        ):
            body = {"title": title, "host_name": "Mia", **({"scheduled_at": at} if at else {})}
            show = merchant.post("/api/shows", json=body).json()
            put = merchant.put(f"/api/shows/{show['id']}/lineup", json=[{"sku": s} for s in skus])
            assert put.is_success, put.text
            if live:
                assert merchant.post(f"/api/shows/{show['id']}/start").status_code == 200
            made[title] = show
    return made


def card(page: Page, title: str) -> Any:
    return page.locator("li.show").filter(has_text=title)


async def wait_for_viewers(server: LiveServer, count: int) -> None:
    """The landing, as served, counts ``count`` viewers on a show."""
    deadline = time.monotonic() + DEADLINE
    while f'data-viewers="{count}"' not in httpx.get(server.url + "/", timeout=30).text:
        assert time.monotonic() < deadline, "the landing never counted the viewer"
        await asyncio.sleep(0.3)


async def test_the_landing_shows_covers_viewers_and_times(
    server: LiveServer, browser: Browser
) -> None:
    """A live show's cover is its featured item's image (else its first item's), with the
    viewers watching and when it started; an upcoming show has a placeholder cover and its
    time as the browser formats it; no sideways scrolling at any size."""
    shows = make_shows(server)
    glow = shows["Friday Glow-Up"]
    # The host features the serum; a viewer watches the show.
    host = await websockets.connect(ws_url(server.url, glow["id"], glow["host_token"]))
    _, token = new_viewer(server.url, "Ava")
    viewer = await websockets.connect(ws_url(server.url, glow["id"], token))
    try:
        for ws in (host, viewer):
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "snapshot"
        await host.send(json.dumps({"type": "feature", "sku": "SRM-VTC"}))
        while json.loads(await asyncio.wait_for(host.recv(), 30))["type"] != "featured":
            pass
        await wait_for_viewers(server, 1)

        page = await browser.new_page(viewport=PHONE)
        problems = page_problems(page)
        await page.goto(server.url + "/")
        glow_card = card(page, "Friday Glow-Up")
        await expect(glow_card.locator(".cover img")).to_have_attribute("src", SERUM)
        await expect(glow_card.locator(".viewers")).to_have_text("1 watching")
        await expect(glow_card.locator(".badge")).to_have_text("Live now")
        await expect(glow_card).to_contain_text("with Mia")
        started = glow_card.locator("time.when")
        await expect(started).to_have_text(re.compile(r"^Started \d{1,2}:\d\d\s?(AM|PM)$"))
        serum_night = card(page, "Serum Night")
        await expect(serum_night.locator(".cover img")).to_have_attribute("src", LIPSTICK)
        await expect(serum_night.locator(".viewers")).to_have_text("0 watching")

        upcoming = card(page, "Sunday Mystery")
        await expect(upcoming.locator(".badge")).to_have_text("Upcoming")
        await expect(upcoming.locator(".cover img")).to_have_count(0)
        await expect(upcoming.locator(".cover-none")).to_be_visible()
        when = upcoming.locator("time.when")
        await expect(when).to_have_attribute("datetime", UPCOMING_AT)
        formatted = await page.evaluate(
            """(at) => new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" })
                .format(new Date(at))""",
            UPCOMING_AT,
        )
        assert "2030" in formatted
        await expect(when).to_have_text(f"Starts {formatted}")
        # Live shows come first, then upcoming ones.
        titles = await page.locator("li.show .title").all_text_contents()
        assert titles == ["Friday Glow-Up", "Serum Night", "Sunday Mystery"]
        # The app's dark theme.
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 15, 18)"
        await expect(page.get_by_role("link", name="My orders")).to_have_attribute(
            "href", "/orders"
        )

        shots = []
        for size in (SMALL, PHONE, LANDSCAPE, DESKTOP):
            await page.set_viewport_size(size)
            await no_sideways_scroll(page, f"landing {size}")
            await expect(glow_card.locator(".cover img")).to_be_visible()
            shots.append(await save(page, "landing"))
        print("screenshots:", ", ".join(shots))
        assert problems == []
    finally:
        await host.close()
        await viewer.close()


async def test_the_landing_in_simplified_chinese(server: LiveServer, browser: Browser) -> None:
    """With the browser in Simplified Chinese the landing's fixed words are Chinese and its
    times in Chinese form; the shows' titles stay as the merchant wrote them."""
    make_shows(server)
    context = await browser.new_context(locale="zh-CN", viewport=PHONE)
    page = await context.new_page()
    problems = page_problems(page)
    await page.goto(server.url + "/")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.get_by_role("heading", name="正在直播")).to_be_visible()
    await expect(page.get_by_role("heading", name="直播预告")).to_be_visible()
    glow = card(page, "Friday Glow-Up")
    await expect(glow.locator(".viewers")).to_have_text("0 人在看")
    await expect(glow.locator(".badge")).to_have_text("直播中")
    await expect(glow).to_contain_text("主播 Mia")
    await expect(glow.locator(".go")).to_have_text("进入直播间")
    upcoming = card(page, "Sunday Mystery")
    await expect(upcoming.locator("time.when")).to_contain_text("开播时间 2030年6月")
    await expect(page.get_by_role("link", name="我的订单")).to_be_visible()
    await expect(page.get_by_role("combobox", name="语言")).to_have_value("zh-CN")
    text = await page.evaluate("document.body.innerText + ' ' + document.title")
    for word in ("Live now", "Upcoming", "watching", "Watch", "with Mia", "Starts", "Started",
                 "My orders", "Live shopping", "live shows", "Test mode"):  # fmt: skip
        assert word not in text, f"{word!r} is still English"
    await no_sideways_scroll(page, "landing zh-CN")
    print("screenshots:", await save(page, "landing-zh-CN"))
    await context.close()
    assert problems == []


async def test_an_unknown_show_is_a_page(server: LiveServer, browser: Browser) -> None:
    """/watch/nope and /studio/nope are pages saying the show does not exist, with a link
    home, in the browser's language."""
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    response = await page.goto(server.url + "/watch/nope")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="This show does not exist")).to_be_visible()
    await page.get_by_role("link", name="See all shows").click()
    await expect(page).to_have_url(server.url + "/")
    await no_sideways_scroll(page, "unknown show")

    context = await browser.new_context(locale="zh-CN", viewport=SMALL)
    chinese = await context.new_page()
    problems += page_problems(chinese)
    await chinese.goto(server.url + "/studio/nope")
    await expect(chinese.get_by_role("heading", name="这场直播不存在")).to_be_visible()
    await expect(chinese.get_by_role("link", name="查看全部直播")).to_have_attribute("href", "/")
    text = await chinese.evaluate("document.body.innerText")
    assert "does not exist" not in text and "See all shows" not in text
    await no_sideways_scroll(chinese, "unknown show zh-CN")
    print("screenshots:", await save(chinese, "unknown-show-zh-CN"))
    await context.close()
    assert problems == []


async def test_the_orders_page_in_simplified_chinese(server: LiveServer, browser: Browser) -> None:
    """The buyer's orders in Simplified Chinese: the page's words, the order's state and its
    date in Chinese, the money through Intl; no English word of the page left."""
    show = make_show(server.url, server.api_key)
    viewer_id, token = new_viewer(server.url, "Ava")
    buy_by_api(server.url, token, show.id, SKUS[0], qty=2, name="Ava")
    context = await browser.new_context(locale="zh-CN", viewport=SMALL)
    page = await context.new_page()
    problems = page_problems(page)
    await page.goto(server.url + "/orders")
    saved = {"viewer_id": viewer_id, "nickname": "Ava", "token": token}
    await page.evaluate("(v) => localStorage.setItem('livesale.viewer', JSON.stringify(v))", saved)
    await page.reload()
    order = page.locator("#orders li.order-card")
    await expect(order).to_have_count(1)
    await expect(page.get_by_role("heading", name="我的订单")).to_be_visible()
    await expect(order.locator(".badge")).to_have_text("已付款")
    await expect(order).to_contain_text(f"2 × Item {SKUS[0]}")
    await expect(order).to_contain_text("€19.80")
    await expect(order).to_contain_text("测试付款")
    await expect(order.locator("time")).to_contain_text("年")
    await expect(page.get_by_role("link", name="全部直播")).to_have_attribute("href", "/")
    await expect(page.get_by_role("combobox", name="语言")).to_be_visible()
    text = await page.evaluate("document.body.innerText + ' ' + document.title")
    for word in ("My orders", "Paid", "newest first", "All shows", "test payment", "Loading"):
        assert word not in text, f"{word!r} is still English"
    await no_sideways_scroll(page, "orders zh-CN")
    print("screenshots:", await save(page, "orders-zh-CN"))
    await context.close()
    assert problems == []
