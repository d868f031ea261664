"""Wire shapes of shows and line-ups (HTTP), and the room events that announce their changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from livesale.events import Event
from livesale.money import Money
from livesale.values import SkuStr

ShowStateName = Literal["scheduled", "live", "ended"]
Limit = Annotated[int, msgspec.Meta(ge=1, le=99)]
#: What a datetime is on the wire (RFC 3339), for the document: JSON Schema's ``date-time``
#: format is only an annotation, which a client need not check.
RFC3339 = (
    r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
)


class ShowIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/shows``."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    host_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scheduled_at: (
        Annotated[datetime, msgspec.Meta(extra_json_schema={"pattern": RFC3339})] | None
    ) = None
    #: Whether the line-up stays on sale on the replay, after the end (see :class:`Show`).
    replay_sales: bool = True


class ShowPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``PATCH /api/shows/{id}``: the merchant's settings of a show. ``replay_sales`` may be
    turned off at any time (after the end it stops the replay's sales at once) but turned on
    only before the end: the closing of a show sold only live forgets its buyers' counts."""

    replay_sales: bool | None = None


class Show(msgspec.Struct, frozen=True):
    id: str
    title: str
    host_name: str
    state: ShowStateName
    paused: bool
    scheduled_at: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    watch_url: str
    #: Once the show has ended: until when holds still live may check out (its end plus the
    #: grace period); a page's countdown ends here if the hold would outlive it. ``None`` while
    #: the replay is on sale: every hold then runs its own time.
    sales_close_at: float | None = None
    #: The line-up is on sale on the replay after the end, with the same limits, while the
    #: recording is kept (``--keep-recordings`` days) and until the merchant turns it off.
    replay_sales: bool = True


class HostToken(msgspec.Struct, frozen=True):
    """A show's new host token (the old one stopped working): shown in this answer only."""

    show_id: str
    host_token: str
    studio_url: str


class ShowCreated(msgspec.Struct, frozen=True):
    """The answer to ``POST /api/shows``: the only time the host token is shown."""

    id: str
    title: str
    host_name: str
    state: ShowStateName
    host_token: str
    studio_url: str
    watch_url: str
    scheduled_at: str | None = None
    replay_sales: bool = True


class LineupItemIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One row of ``PUT /api/shows/{id}/lineup``; ``price`` overrides the catalogue price."""

    sku: SkuStr
    price: Money | None = None
    limit_per_buyer: Limit | None = None


class LineupItem(msgspec.Struct, frozen=True):
    sku: str
    title: str
    description: str
    image_url: str
    price: Money
    list_price: Money
    limit_per_buyer: int | None
    available: int
    featured: bool
    #: Units on the shelf in all (available, held and sold): the page's units-left bar.
    on_hand: int = 0


class Lineup(msgspec.Struct, frozen=True):
    show_id: str
    featured: str | None
    items: list[LineupItem]


# Room events of the show (sequenced: every process and viewer sees the same numbers).


class Featured(Event, tag="featured", frozen=True):
    """The item now explained, or ``null``; ``at`` is the Redis clock in ms (chapter marks)."""

    sku: str | None
    at: int = 0


class LineupChanged(Event, tag="lineup", frozen=True):
    lineup: Lineup


class ShowChanged(Event, tag="show", frozen=True):
    """The show's state changed (live, ended) or its publisher paused or resumed."""

    state: ShowStateName
    paused: bool = False
    #: With ``ended``: until when live holds may still check out.
    sales_close_at: float | None = None
    #: Whether the replay sells (the page's Buy after the end).
    replay_sales: bool = True
