"""The pure parts of shows: how the landing sums a show's presence."""

from __future__ import annotations

from livesale.shows.state import presence_total


def test_presence_counts_fresh_reports_only() -> None:
    """Each process's viewers count while its report is fresh; a stale one counts 0, as in
    ``presence.lua``."""
    reports = {b"p1": b"3:2000", b"p2": b"4:1500", b"p3": b"9:999"}
    assert presence_total(reports, now_ms=1000) == 7
    assert presence_total(reports, now_ms=1500) == 7
    assert presence_total(reports, now_ms=1501) == 3
    assert presence_total({}, now_ms=0) == 0
