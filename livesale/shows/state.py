"""Show state, pure: ``scheduled → live → ended``; no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from livesale.errors import InvalidTransition


class ShowState(enum.Enum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


_ALLOWED: dict[ShowState, frozenset[ShowState]] = {
    ShowState.SCHEDULED: frozenset({ShowState.LIVE, ShowState.ENDED}),
    ShowState.LIVE: frozenset({ShowState.ENDED}),
    ShowState.ENDED: frozenset(),
}


def transition(current: ShowState, target: ShowState) -> ShowState:
    """``target`` if a show in ``current`` may move there; :class:`InvalidTransition` else."""
    if target not in _ALLOWED[current]:
        raise InvalidTransition(
            f"show is {current.value}; it cannot become {target.value}",
            state=current.value,
        )
    return target


def presence_total(entries: Mapping[bytes, bytes], now_ms: int) -> int:
    """The viewers of a show's room as ``presence.lua`` sums them: each process's count
    (``viewers:expires_ms``) while its report is fresh at ``now_ms``; stale reports count 0."""
    total = 0
    for value in entries.values():
        count, _, expires = value.decode().partition(":")
        if expires and int(expires) >= now_ms:
            total += int(count)
    return total
