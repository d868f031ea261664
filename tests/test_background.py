"""Background tasks stop when asked, even when a callee swallows the cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from livesale import background


async def swallowing_call() -> None:
    """Like a client library that catches CancelledError while it waits for a reply."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return


async def test_swallowed_cancellation_is_raised_again() -> None:
    """A loop that checks after each call stops although the call ate the cancellation."""
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            await swallowing_call()
            background.check_cancelled()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    await background.stop([task], timeout=2)
    assert task.cancelled() and rounds == 1


async def test_stop_never_waits_forever(caplog: pytest.LogCaptureFixture) -> None:
    """A task that refuses to stop is logged and left behind after the timeout."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="livesale"):
        await background.stop([task], timeout=0.2)
    assert "stubborn did not stop" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.done()
