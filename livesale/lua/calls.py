"""One typed call builder per script of :mod:`livesale.lua`: keys and arguments in its order.

The stores, the twin tests (pure rules against Lua on a real Redis) and the benchmarks all
build their calls here, so a key passed in the wrong place is wrong everywhere at once and the
twin tests catch it. Each builder's docstring is the script's contract; the ``.lua`` file's
header says the same from the other side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from livesale import keys
from livesale.lua import ScriptCall


def _shelf(sku: str) -> list[str]:
    """The five keys every hold script takes first (``_shelf.lua``)."""
    return [
        keys.stock(sku),
        keys.holds(sku),
        keys.hold_expiry(sku),
        keys.holds_done(sku),
        keys.buyers(sku),
    ]


# --- holds and stock ---------------------------------------------------------------------------


def reserve(
    *,
    hold_id: str,
    show_id: str,
    viewer_id: str,
    sku: str,
    qty: int,
    hold_ms: int,
    idem_key: str,
    idem_seconds: int,
    reap_batch: int,
    default_limit: int = 0,
    client: str = "",
    address_multiple: int = 0,
    live_holds: int = 0,
    rate: tuple[int, float] = (0, 0.0),
) -> ScriptCall:
    """A buy click. Answers ``{status, available, hold, info1, info2, reaped...}``.
    ``default_limit``: the per-buyer limit of an item whose line-up sets none; ``client``: the
    buyer's address, which may hold and buy ``address_multiple`` buyers' limits;
    ``live_holds``: how many holds the viewer may have live at once in the show (0: no cap),
    its address ``address_multiple`` times as many; ``rate``: the ``(burst, per second)`` of
    buy clicks from ``client`` (burst 0: no rate limit)."""
    return ScriptCall(
        "reserve",
        [
            *_shelf(sku),
            keys.show(show_id),
            keys.lineup(show_id),
            keys.idempotency(show_id, viewer_id, idem_key),
            keys.STOCK_READY,
            keys.show_channel(show_id),
            keys.HOLD_SKUS,
            keys.show_bans(show_id),
            *_live_holds(show_id, viewer_id, client),
            keys.rate("hold", client),
        ],
        [
            hold_id,
            show_id,
            viewer_id,
            sku,
            qty,
            hold_ms,
            idem_key,
            idem_seconds,
            reap_batch,
            default_limit,
            client,
            address_multiple,
            live_holds,
            *rate,
        ],
    )


def _live_holds(show_id: str, viewer_id: str, client: str) -> list[str]:
    """The two sets of live holds a hold counts in: its viewer's and its address's."""
    return [keys.live_holds(show_id, viewer_id), keys.live_holds(show_id, "@" + client)]


def release(
    *,
    sku: str,
    show_id: str,
    hold_id: str,
    viewer_id: str | None,
    owner: str = "",
    client: str = "",
) -> ScriptCall:
    """Give a held hold back (``viewer_id=None``: the system). ``{status, available, hold}``.
    ``owner`` and ``client``: the hold's viewer and address, whose live holds it leaves."""
    return ScriptCall(
        "release",
        [*_shelf(sku), keys.show_channel(show_id), *_live_holds(show_id, owner, client)],
        [hold_id, viewer_id or ""],
    )


def confirm(
    *, sku: str, show_id: str, hold_id: str, order_id: str, owner: str = "", client: str = ""
) -> ScriptCall:
    """Held to sold for ``order_id`` while the hold lives. ``{status, available, hold}``.
    ``owner`` and ``client``: the hold's viewer and address, whose live holds it leaves."""
    return ScriptCall(
        "confirm",
        [
            *_shelf(sku),
            keys.STOCK_READY,
            keys.show_channel(show_id),
            *_live_holds(show_id, owner, client),
        ],
        [hold_id, order_id],
    )


def expire(*, sku: str, batch: int, keep_finished_ms: int) -> ScriptCall:
    """Expire up to ``batch`` due holds of ``sku``. ``{available, expired hold...}``."""
    return ScriptCall("expire", [*_shelf(sku), keys.HOLD_SKUS], [sku, batch, keep_finished_ms])


def release_show(*, sku: str, show_id: str) -> ScriptCall:
    """Release the show's held holds of ``sku``. ``{available, released hold...}``."""
    return ScriptCall("release_show", _shelf(sku), [show_id])


def stock_batch(
    *, step: str, change: str, targets: Sequence[tuple[str, int]], lease_ms: int
) -> ScriptCall:
    """One step (``prepare`` or ``finish``) of the change ``change`` of on-hand counts to
    ``targets`` (SKU, count). ``prepare`` answers ``{"ok"}``, ``{"unready"}``, ``{"busy"}``,
    ``{"interrupted"}`` or ``{"conflict", row, on_hand, held, sold, ...}`` (rows from 1);
    ``finish``, ``{"ok", row, shortfall, ...}`` for the rows below what is held and sold."""
    return ScriptCall(
        "stock_batch",
        [keys.STOCK_READY, keys.STOCK_BATCH, *(keys.stock(sku) for sku, _ in targets)],
        [step, change, lease_ms, *(n for _, n in targets)],
    )


def stock_rebuild(
    *,
    sku: str,
    on_hand: int,
    sold: int,
    authorized_holds: Sequence[str],
    bought: Mapping[str, int],
) -> ScriptCall:
    """Rewrite one SKU's counters from SQLite's figures and the holds Redis still has.
    ``{on_hand, available, held, sold, shortfall}``."""
    args: list[object] = [on_hand, sold, len(authorized_holds), *authorized_holds]
    for buyer, units in bought.items():
        args.extend([buyer, units])
    return ScriptCall(
        "stock_rebuild",
        [
            keys.stock(sku),
            keys.holds(sku),
            keys.hold_expiry(sku),
            keys.buyers(sku),
            keys.returned(sku),
        ],
        args,
    )


def stock_return(
    *,
    sku: str,
    show_id: str,
    order_id: str,
    buyer: str,
    total: int,
    known: int,
) -> ScriptCall:
    """Units of a cancelled or refunded order back to ``available``, once each: ``total`` the
    order has given back in all, ``known`` of them SQLite knows are back already.
    ``{status, available, units moved now}``."""
    return ScriptCall(
        "stock_return",
        [
            keys.stock(sku),
            keys.buyers(sku),
            keys.returned(sku),
            keys.STOCK_READY,
            keys.show_channel(show_id),
        ],
        [order_id, total, known, buyer, sku],
    )


def rate(*, action: str, client: str, burst: int, per_second: float, cost: int) -> ScriptCall:
    """Take ``cost`` tokens of ``client``'s bucket for ``action``. ``{allowed, retry ms}``."""
    return ScriptCall("rate", [keys.rate(action, client)], [burst, per_second, cost])


# --- the room ----------------------------------------------------------------------------------


def publish_seq(*, show_id: str, body: bytes) -> ScriptCall:
    """Publish one sequenced event (``"seq":0`` in ``body`` is stamped); answers its number."""
    return ScriptCall("publish_seq", [keys.show_seq(show_id), keys.show_channel(show_id)], [body])


def feature(*, show_id: str, sku: str | None, body: bytes) -> ScriptCall:
    """Feature ``sku`` (``None`` unfeatures); ``body`` is the encoded ``featured`` event."""
    return ScriptCall(
        "feature",
        [
            keys.show(show_id),
            keys.lineup(show_id),
            keys.show_requests(show_id),
            keys.show_request_order(show_id),
            keys.show_voters(show_id, sku or ""),
            keys.show_seq(show_id),
            keys.show_channel(show_id),
            keys.show_voter_addresses(show_id, sku or ""),
        ],
        [sku or "", body],
    )


def request(
    *, show_id: str, sku: str, viewer_id: str, vote: bool, client: str = "", crowd: int = 0
) -> ScriptCall:
    """Open or upvote the explain request for ``sku``; ``client``'s viewers count at most
    ``crowd`` times (``address_limit`` past it; ``""`` is not counted)."""
    return ScriptCall(
        "request",
        [
            keys.show(show_id),
            keys.lineup(show_id),
            keys.show_requests(show_id),
            keys.show_request_order(show_id),
            keys.show_voters(show_id, sku),
            keys.show_seq(show_id),
            keys.show_channel(show_id),
            keys.show_voter_addresses(show_id, sku),
        ],
        [sku, viewer_id, "1" if vote else "0", client, crowd, keys.ROOM_RECORD_SECONDS],
    )


def resolve(*, show_id: str, sku: str) -> ScriptCall:
    """Close the request for ``sku`` without featuring it."""
    return ScriptCall(
        "resolve",
        [
            keys.show_requests(show_id),
            keys.show_request_order(show_id),
            keys.show_voters(show_id, sku),
            keys.show_seq(show_id),
            keys.show_channel(show_id),
            keys.show_voter_addresses(show_id, sku),
        ],
        [sku],
    )


def plant(
    *,
    show_id: str,
    sku: str,
    viewer_id: str,
    want: bool,
    keep_ms: int,
    client: str = "",
    crowd: int = 0,
) -> ScriptCall:
    """Plant or unplant ``sku``; answers ``{code, count}``. ``client``'s viewers plant one item
    at most ``crowd`` times (``address_limit`` past it; ``""`` is not counted). The viewer's
    planted set expires ``keep_ms`` after its last change."""
    return ScriptCall(
        "plant",
        [
            keys.show(show_id),
            keys.lineup(show_id),
            keys.show_plants(show_id),
            keys.viewer_plants(show_id, viewer_id),
            keys.show_channel(show_id),
            keys.show_plant_addresses(show_id),
        ],
        [sku, viewer_id, "1" if want else "0", client, crowd, keys.ROOM_RECORD_SECONDS, keep_ms],
    )


def chat(
    *,
    show_id: str,
    viewer_id: str,
    host: bool,
    body: bytes,
    rate: float,
    burst: float,
    tail: int,
    client: str = "",
) -> ScriptCall:
    """Say a chat line; answers ``{code, n}``: the line id, or ms to wait when refused. A mute
    of ``client`` (the speaker's address) holds as one of the viewer does."""
    return ScriptCall(
        "chat",
        [
            keys.show(show_id),
            keys.show_mutes(show_id),
            keys.chat_bucket(show_id, viewer_id),
            keys.show_chat(show_id),
            keys.show_seq(show_id),
            keys.show_channel(show_id),
        ],
        [viewer_id, "1" if host else "0", body, rate, burst, tail, client],
    )


def delete_chat(*, show_id: str, line_id: int, body: bytes) -> ScriptCall:
    """Remove chat line ``line_id`` for everyone."""
    return ScriptCall(
        "delete_chat",
        [keys.show_chat(show_id), keys.show_seq(show_id), keys.show_channel(show_id)],
        [line_id, body],
    )


def mute(*, show_id: str, viewer_id: str, seconds: int, body: bytes) -> ScriptCall:
    """Mute ``viewer_id``, and the address it joined from, for ``seconds`` (0 lifts); answers
    muted-until in ms."""
    return ScriptCall(
        "mute",
        [keys.show_mutes(show_id), keys.show_channel(show_id), keys.show_clients(show_id)],
        [viewer_id, seconds, body, keys.ROOM_RECORD_SECONDS],
    )


def notify(*, show_id: str, viewer_id: str, sku: str, on: bool) -> ScriptCall:
    """Ask (``on``) or stop asking to be told when ``sku`` is back in stock."""
    return ScriptCall(
        "notify",
        [keys.show(show_id), keys.lineup(show_id), keys.viewer_notify(show_id, viewer_id)],
        [sku, "1" if on else "0", keys.ROOM_RECORD_SECONDS],
    )


def ban(*, show_id: str, viewer_id: str, lift: bool = False) -> ScriptCall:
    """Ban ``viewer_id`` and the address it joined from (``lift``: let them back); a ban closes
    their sockets everywhere. Answers the address bound (``""`` when none is known)."""
    return ScriptCall(
        "ban",
        [
            keys.show_bans(show_id),
            keys.show_clients(show_id),
            keys.show_channel(show_id),
        ],
        [viewer_id, "0" if lift else "1", keys.ROOM_RECORD_SECONDS],
    )


def join(*, show_id: str, viewer_id: str, client: str, record: bool = True) -> ScriptCall:
    """A viewer opens the room: ``banned``, or ``ok`` with the address recorded (when
    ``record``)."""
    return ScriptCall(
        "join",
        [keys.show_bans(show_id), keys.show_clients(show_id)],
        [viewer_id, client, keys.ROOM_RECORD_SECONDS, "1" if record else "0"],
    )


def slow_mode(*, show_id: str, seconds: int, body: bytes) -> ScriptCall:
    """Set the show's slow mode (0 turns it off)."""
    return ScriptCall(
        "slow_mode",
        [keys.show(show_id), keys.show_seq(show_id), keys.show_channel(show_id)],
        [seconds, body],
    )


def presence(*, show_id: str, process: str, count: int, ttl_ms: int) -> ScriptCall:
    """Report this process's viewer ``count`` (-1 only reads); answers the show's total."""
    return ScriptCall("presence", [keys.show_presence(show_id)], [process, count, ttl_ms])
