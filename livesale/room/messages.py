"""The room WebSocket's messages (``/ws/shows/{id}``), client to server and server to client.

The show's own events (``show``, ``lineup``, ``featured``) are defined with the show in
:mod:`livesale.shows` and take part in the server's union here.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from livesale.events import Event, Msg
from livesale.shows import Featured, Lineup, LineupChanged, Show, ShowChanged
from livesale.values import SkuStr

# ---------------------------------------------------------------------------------------------
# The room WebSocket (``/ws/shows/{id}``).
#
# Every frame is one JSON object with a ``type``. Server frames carry ``seq``:
#
# * *sequenced* events (``show``, ``lineup``, ``featured``, ``requests``, ``chat``,
#   ``chat_deleted``, ``slow_mode``) each take the show's next sequence number, the same on every
#   process and for every viewer;
# * every other frame (``snapshot``, ``stock``, ``sale``, ``hearts``, ``presence``, ``plants``,
#   ``planted``, ``muted``, ``hold``, ``order``, ``error``) carries the number of the last
#   sequenced event before it and never advances it.
#
# A client keeps the highest ``seq`` seen; a frame with ``seq > last + 1`` means it missed an
# event: it sends ``{"type": "snapshot"}`` (or reconnects) and replaces its view with the answer.
# ---------------------------------------------------------------------------------------------

ChatText = Annotated[str, msgspec.Meta(max_length=2000)]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]
SlowSeconds = Annotated[int, msgspec.Meta(ge=0, le=600)]
HeartCount = Annotated[int, msgspec.Meta(ge=1, le=50)]
ViewerIdStr = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


# Client to server ----------------------------------------------------------------------------


class ChatIn(Msg, tag="chat", frozen=True):
    """Say something: 1–280 characters once trimmed."""

    text: ChatText


class HeartIn(Msg, tag="heart", frozen=True):
    """Tap the heart ``count`` times (clients may batch taps)."""

    count: HeartCount = 1


class RequestIn(Msg, tag="request", frozen=True):
    """Ask the host to explain ``sku`` (求讲解); asking again for an open request is a vote."""

    sku: SkuStr


class VoteIn(Msg, tag="vote", frozen=True):
    """Upvote the open request for ``sku``."""

    sku: SkuStr


class PlantIn(Msg, tag="plant", frozen=True):
    """Plant (``want=true``) or unplant ``sku``: a private wish list; the host sees counts."""

    sku: SkuStr
    want: bool = True


class NotifyIn(Msg, tag="notify", frozen=True):
    """Tell me in the room when ``sku`` is back in stock (``on=false``: never mind)."""

    sku: SkuStr
    on: bool = True


class SnapshotIn(Msg, tag="snapshot", frozen=True):
    """Ask for a fresh snapshot (after a gap in ``seq``)."""


class FeatureIn(Msg, tag="feature", frozen=True):
    """Host: feature ``sku`` ("now explaining"); resolves its request."""

    sku: SkuStr


class UnfeatureIn(Msg, tag="unfeature", frozen=True):
    """Host: feature nothing."""


class ResolveIn(Msg, tag="resolve", frozen=True):
    """Host: close the request for ``sku`` without featuring it."""

    sku: SkuStr


class DeleteChatIn(Msg, tag="delete_chat", frozen=True):
    """Host: remove chat line ``id`` for everyone."""

    id: Annotated[int, msgspec.Meta(ge=1)]


class MuteIn(Msg, tag="mute", frozen=True):
    """Host: stop ``viewer_id`` chatting for ``seconds`` (0 lifts the mute)."""

    viewer_id: ViewerIdStr
    seconds: Seconds


class BanIn(Msg, tag="ban", frozen=True):
    """Host: remove ``viewer_id`` from the show, and the address it joined from: their sockets
    close (4410) and they are refused on rejoin and at the till. ``lift`` lets them back."""

    viewer_id: ViewerIdStr
    lift: bool = False


class SlowModeIn(Msg, tag="slow_mode", frozen=True):
    """Host: each viewer may chat once every ``seconds`` (0 turns slow mode off)."""

    seconds: SlowSeconds


ClientMsg = (
    ChatIn
    | HeartIn
    | RequestIn
    | VoteIn
    | PlantIn
    | NotifyIn
    | SnapshotIn
    | FeatureIn
    | UnfeatureIn
    | ResolveIn
    | DeleteChatIn
    | MuteIn
    | BanIn
    | SlowModeIn
)
CLIENT_TYPES: frozenset[str] = frozenset(t.__struct_config__.tag for t in get_args(ClientMsg))
#: Host-only client messages.
HOST_ONLY: tuple[type[Msg], ...] = (
    FeatureIn,
    UnfeatureIn,
    ResolveIn,
    DeleteChatIn,
    MuteIn,
    BanIn,
    SlowModeIn,
)


# Server to client ----------------------------------------------------------------------------


class RequestEntry(msgspec.Struct, frozen=True):
    """One line of the host's queue."""

    sku: str
    votes: int


class ChatLine(Event, tag="chat", frozen=True, kw_only=True):
    """A chat line; ``id`` is the sequence number it was said at."""

    id: int = 0
    at: int = 0  # ms since the epoch, Redis clock
    viewer_id: str
    nick: str
    text: str
    host: bool = False


class ChatDeleted(Event, tag="chat_deleted", frozen=True):
    id: int


class Requests(Event, tag="requests", frozen=True):
    """The open requests, most votes first, then oldest first."""

    queue: list[RequestEntry]


class SlowMode(Event, tag="slow_mode", frozen=True):
    seconds: int


class StockItem(msgspec.Struct, frozen=True):
    sku: str
    available: int


class StockChanged(Event, tag="stock", frozen=True):
    """The latest stock of every line-up item that changed since the previous frame."""

    items: list[StockItem]


class SaleItem(msgspec.Struct, frozen=True):
    sku: str
    qty: int


class Sold(Event, tag="sale", frozen=True):
    """Units sold per SKU since the previous frame (the sales ticker)."""

    items: list[SaleItem]


class Hearts(Event, tag="hearts", frozen=True):
    """Hearts tapped in the room since the previous frame."""

    count: int


class Presence(Event, tag="presence", frozen=True):
    """Viewers connected to the show, on every process."""

    viewers: int


class Plants(Event, tag="plants", frozen=True):
    """Host only: how many viewers planted ``sku`` now."""

    sku: str
    count: int


class Planted(Event, tag="planted", frozen=True):
    """Only to the viewer who planted: ``sku`` is now on (or off) their list."""

    sku: str
    want: bool


class Notifying(Event, tag="notifying", frozen=True):
    """Only to the viewer who asked: whether they will be told when ``sku`` is back."""

    sku: str
    on: bool


class BackInStock(Event, tag="back_in_stock", frozen=True):
    """Only to the viewers who asked to be told: ``sku`` was sold out and is on sale again
    (units came back from expired holds, a cancel, a refund or the merchant)."""

    sku: str
    available: int


class Muted(Event, tag="muted", frozen=True):
    """Only to the muted viewer: chat is refused until ``until`` (ms, 0 = not muted)."""

    until: int


class ErrorMsg(Event, tag="error", frozen=True):
    """A refused message. ``code`` is stable; the socket stays open unless it says otherwise."""

    code: str
    detail: str = ""


class You(msgspec.Struct, frozen=True):
    role: Literal["viewer", "host", "watcher"]
    viewer_id: str
    nick: str


class Snapshot(Event, tag="snapshot", frozen=True):
    """Everything a client needs to draw the room as of ``seq``."""

    you: You
    show: Show
    lineup: Lineup
    featured: str | None
    requests: list[RequestEntry]
    viewers: int
    chat: list[ChatLine]
    slow_mode: int
    #: The viewer's own planted SKUs.
    planted: list[str]
    #: The sold-out SKUs the viewer asked to be told about when they are back.
    notifying: list[str]
    #: Host only: plant counts per SKU (empty for viewers).
    plants: dict[str, int]
    #: ms until which this viewer is muted (0: not muted).
    muted_until: int
    #: The viewer's own live holds.
    holds: list[dict[str, object]]


ServerMsg = (
    Snapshot
    | ChatLine
    | ChatDeleted
    | Featured
    | Requests
    | LineupChanged
    | ShowChanged
    | SlowMode
    | StockChanged
    | Sold
    | Hearts
    | Presence
    | Plants
    | Planted
    | Notifying
    | BackInStock
    | Muted
    | ErrorMsg
)

client_decoder = msgspec.json.Decoder(ClientMsg)
