"""Headless Chromium publishing over WHIP and watching over WHEP through the relay.

Two small test pages (``tests/media/pages/``) are served from another local origin than the
livesale server, so the WHIP/WHEP calls are cross-origin and rely on the relay's CORS headers.
Chromium's fake camera and microphone publish; a second page plays the show and the test reads
its ``getStats()`` decoder counters.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from livesale.config import Settings
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import LiveServer
from tests.media.test_routes import make_show, media_hub

PAGES = Path(__file__).resolve().parent / "pages"
#: Deadline for each step: it only catches a hang, on a machine however busy.
DEADLINE = 180.0

pytestmark = [
    pytest.mark.netns,
    pytest.mark.e2e,
    # In CI the check never skips: a missing browser fails it.
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (scripts/test installs it when run as root)",
    ),
]


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """The server offers 127.0.0.1 as its only ICE candidate."""
    return Settings(data_dir=tmp_path / "data", redis_url=redis_url, ice_hosts=("127.0.0.1",))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output free of access logs."""


@pytest.fixture
def pages() -> Iterator[str]:
    """The test pages, served from their own origin on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="test-pages", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


async def _wait_for(page: Any, name: str, status: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await page.evaluate(f"window.{name}")
        if state["status"] == status:
            return
        assert state["status"] != "failed", f"{name} failed: {state['error']}"
        assert asyncio.get_running_loop().time() < deadline, f"{name} stuck: {state}"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(900)
async def test_chromium_viewer_decodes_a_chromium_publisher(
    loopback_ice: None, server: LiveServer, pages: str, encoder_calls: list[str]
) -> None:
    """A fake-camera page publishes via WHIP; a WHEP page in Chromium decodes rising frames."""
    from playwright.async_api import async_playwright

    assert CHROMIUM.exists(), "chromium is required in CI: apt-get install chromium"
    show = make_show(server)
    query = {"server": server.url, "show": show.id}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context()
            publisher = await context.new_page()
            await publisher.goto(
                f"{pages}/publish.html?{urlencode({**query, 'token': show.host_token})}"
            )
            await _wait_for(publisher, "publisher", "published", timeout=DEADLINE)

            viewer = await context.new_page()
            await viewer.goto(f"{pages}/watch.html?{urlencode(query)}")
            await _wait_for(viewer, "viewer", "watching", timeout=DEADLINE)
            location = await viewer.evaluate("window.viewer.location")
            assert location.startswith(f"/whep/{show.id}/"), "Location must be exposed (CORS)"

            loop = asyncio.get_running_loop()
            first: dict[str, Any] = {}
            deadline = loop.time() + DEADLINE
            while loop.time() < deadline:
                first = await viewer.evaluate("window.probe()")
                if first["framesDecoded"] > 0 and first["videoWidth"] > 0:
                    break
                await asyncio.sleep(0.1)
            assert first["framesDecoded"] > 0, f"the viewer decoded nothing: {first}"
            assert first["videoWidth"] > 0 and first["videoHeight"] > 0
            assert first["keyFramesDecoded"] >= 1
            assert first["codec"] in ("video/VP8", "video/H264")

            # Decoding goes on: ten more frames (half a second of the fake camera when idle).
            deadline = loop.time() + DEADLINE
            while True:
                later = await viewer.evaluate("window.probe()")
                if later["framesDecoded"] >= first["framesDecoded"] + 10:
                    break
                assert loop.time() < deadline, (first, later)
                await asyncio.sleep(0.1)
            assert later["connection"] == "connected"

            hub = media_hub(server)
            assert hub.stats.publishers == 1 and hub.stats.viewers == 1
            assert hub.stats.video_frames_forwarded > 0
        finally:
            await browser.close()
    assert encoder_calls == [], "the relay transcoded"
