"""``english_left`` finds the English a translated page still shows, and only what it shows."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.e2e.i18n_check import english_left

pytestmark = [pytest.mark.e2e]

PAGE = """<!doctype html><html lang="zh-CN"><head><title>直播 livesale</title>
<style>.gone { display: none } .unseen { visibility: hidden }</style></head><body>
<h1>周五直播 Friday Glow-Up</h1>
<p>Velvet Lipstick Red · EUR 19.90 · 还剩 OK 件</p>
<button aria-label="Buy now">购买</button>
<input placeholder="Say something" title="聊天">
<img src="/x.png" alt="Product photo">
<input type="submit" value="Send">
<p>Ava: hello hello HELLO</p>
<p class="gone">Hidden words</p>
<p class="unseen">Unseen words</p>
<button class="gone" aria-label="Invisible label">隐藏</button>
<dialog><p>Closed dialog</p></dialog>
</body></html>"""


async def test_english_left_on_a_static_page(browser: Browser) -> None:
    """The text, attributes and button values a reader sees, each word once, less the allowed
    words and those under three letters; nothing hidden."""
    page = await browser.new_page()
    await page.set_content(PAGE)
    allowed = {"livesale", "Friday Glow-Up", "Velvet Lipstick Red", "EUR", "Ava"}
    assert await english_left(page, allowed) == [
        "hello",
        "Buy",
        "now",
        "Say",
        "something",
        "Product",
        "photo",
        "Send",
    ]
    everything = {"hello", "buy now", "say something", "product photo", "send"}
    assert await english_left(page, allowed | everything) == []
