"""Background tasks that always stop when asked.

redis-py can swallow a ``CancelledError`` that lands while it waits for a reply (the call then
returns or raises something else), which would leave a cancelled loop running forever and hang
shutdown. :func:`check_cancelled` re-raises a cancellation that was swallowed; :func:`stop`
cancels and waits, but never forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("livesale")

#: How long :func:`stop` waits for cancelled tasks before giving up on them.
STOP_SECONDS = 5.0


def check_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was cancelled and a callee swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(tasks: Iterable[asyncio.Task[Any]], timeout: float = STOP_SECONDS) -> None:
    """Cancel ``tasks`` and wait up to ``timeout`` for them; log any that would not stop."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for task in stuck:
        log.error("background task %s did not stop within %.0fs", task.get_name(), timeout)
