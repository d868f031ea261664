"""Shows: their states, line-ups, the featured item and host tokens.

This module is the shows' surface: other domains import only the names below.
"""

from livesale.shows.component import SHOWS, build, merchant_or_host
from livesale.shows.files import read_lineup
from livesale.shows.messages import (
    Featured,
    Lineup,
    LineupChanged,
    LineupItemIn,
    Show,
    ShowChanged,
    ShowCreated,
    ShowIn,
)
from livesale.shows.routes import routes
from livesale.shows.store import ShowStore

__all__ = [
    "SHOWS",
    "Featured",
    "Lineup",
    "LineupChanged",
    "LineupItemIn",
    "Show",
    "ShowChanged",
    "ShowCreated",
    "ShowIn",
    "ShowStore",
    "build",
    "merchant_or_host",
    "read_lineup",
    "routes",
]
