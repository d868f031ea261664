"""Show state, pure: ``scheduled → live → ended``; no I/O."""

from __future__ import annotations

import enum

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
