"""The pages' saved tokens in Chromium: kept when the room closes for another reason (1008 after
malformed frames), dropped and asked for again only when the server calls the token invalid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.e2e.viewer import join, sign_in
from tests.room.conftest import make_show

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(90)]

VIEWER_KEY = "livesale.viewer"

SOCKET_OPEN = """() => {
    const socket = window.livesale.room.socket;
    return socket !== null && socket.readyState === WebSocket.OPEN;
}"""


def page_problems(page: Page) -> list[str]:
    """Uncaught errors of ``page`` and frames its room did not know, as they happen."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console(message: Any) -> None:
        if "unknown message type" in message.text:
            problems.append(message.text)

    page.on("console", console)
    return problems


async def saved_viewer(page: Page) -> Any:
    return await page.evaluate(f"localStorage.getItem({json.dumps(VIEWER_KEY)})")


async def test_socket_closed_1008_keeps_the_saved_viewer(
    server: LiveServer, browser: Browser
) -> None:
    """After its socket sends three malformed frames (1008), the page reconnects as the same
    viewer."""
    show = make_show(server.url, server.api_key)
    page = await browser.new_page()
    problems = page_problems(page)
    await join(page, f"{server.url}/watch/{show.id}", "Ava", len(show.skus))
    await page.wait_for_function(SOCKET_OPEN)
    saved = await saved_viewer(page)
    assert saved is not None and json.loads(saved)["token"]

    code = await page.evaluate(
        """() => new Promise((resolve) => {
            const socket = window.livesale.room.socket;
            socket.addEventListener("close", (event) => resolve(event.code));
            for (let n = 0; n < 3; n++) socket.send("{not json");
        })"""
    )
    assert code == 1008
    await page.wait_for_function(SOCKET_OPEN, timeout=15_000)
    assert await saved_viewer(page) == saved
    await expect(page.locator("#nickname-dialog")).not_to_be_visible()
    await page.get_by_label("Say something").fill("still here")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("#chat li").last).to_have_text("Ava still here")
    assert problems == []


async def test_forged_saved_viewer_is_dropped_and_asked_again(
    server: LiveServer, browser: Browser
) -> None:
    """A saved viewer whose token the server refuses (4403) is removed: the page watches
    without one, and asks for a nickname again at the first chat line."""
    show = make_show(server.url, server.api_key)
    page = await browser.new_page()
    problems = page_problems(page)
    await page.goto(f"{server.url}/healthz")
    forged = {"viewer_id": "v_forged", "nickname": "Eve", "token": "v1.forged.token"}
    await page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)", [VIEWER_KEY, json.dumps(forged)]
    )
    await page.goto(f"{server.url}/watch/{show.id}")
    await page.wait_for_function("() => window.livesale.room.state.you?.role === 'watcher'")
    await expect(page.locator("#lineup li.item")).to_have_count(len(show.skus))
    await expect(page.locator("#nickname-dialog")).to_be_hidden()
    assert await saved_viewer(page) is None

    await sign_in(page, "Bo")
    await page.wait_for_function(SOCKET_OPEN)
    saved = await saved_viewer(page)
    assert saved is not None and json.loads(saved)["token"] != forged["token"]
    assert problems == []


async def test_wrong_host_token_is_dropped_and_asked_again(
    server: LiveServer, browser: Browser
) -> None:
    """The studio drops a host token the server refuses (4403) and asks for the right one."""
    show = make_show(server.url, server.api_key)
    page = await browser.new_page()
    problems = page_problems(page)
    key = f"livesale.host.{show.id}"
    await page.goto(f"{server.url}/studio/{show.id}#token=host_wrong")
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible(timeout=10_000)
    await expect(dialog.locator(".form-error")).not_to_be_empty()
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(key)})") is None

    await page.locator("#token-input").fill(show.host_token)
    await page.get_by_role("button", name="Open studio").click()
    await expect(page.locator("#lineup li.row")).to_have_count(len(show.skus))
    await page.wait_for_function(SOCKET_OPEN)
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(key)})") == show.host_token
    assert problems == []
