"""End-to-end tests run in a loopback-only network namespace, like the media tests; the
``browser`` fixture is Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from livesale.config import in_ci
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

# Importing the hook registers it for this directory too: every ``netns`` test here re-runs
# itself under ``unshare -n`` with only ``lo`` up.
from tests.media.conftest import in_loopback_namespace, pytest_runtest_protocol

__all__ = ["in_loopback_namespace", "pytest_runtest_protocol"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        if in_ci():
            pytest.fail("chromium is missing: scripts/test installs it")
        pytest.skip("Debian's chromium is not installed (scripts/test installs it as root)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()
