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


def admit(
    *,
    hold_id: str,
    show_id: str,
    viewer_id: str,
    sku: str,
    qty: int,
    hold_ms: int,
    idem_key: str,
    idem_seconds: int,
    client: str = "",
    address_multiple: int = 0,
    live_holds: int = 0,
    rate: tuple[int, float] = (0, 0.0),
) -> ScriptCall:
    """A buy click's first step, in the show's slot: ``{status, hold id, info1, info2,
    expiry ms}``. ``client``: the buyer's address; ``live_holds``: how many holds the viewer
    may have live at once in the show (0: no cap), its address ``address_multiple`` times as
    many; ``rate``: the ``(burst, per second)`` of buy clicks from ``client`` in the show
    (burst 0: no rate limit)."""
    return ScriptCall(
        "admit",
        [
            keys.show(show_id),
            keys.lineup(show_id),
            keys.idempotency(show_id, viewer_id, idem_key),
            keys.show_bans(show_id),
            *_live_holds(show_id, viewer_id, client),
            keys.buy_bucket(show_id, client),
        ],
        [
            hold_id,
            viewer_id,
            sku,
            qty,
            hold_ms,
            idem_seconds,
            client,
            address_multiple,
            live_holds,
            *rate,
        ],
    )


def unadmit(
    *, hold_id: str, show_id: str, viewer_id: str, sku: str, qty: int, idem_key: str, client: str
) -> ScriptCall:
    """Give back what :func:`admit` took for a click :func:`reserve` then refused."""
    return ScriptCall(
        "unadmit",
        [
            keys.idempotency(show_id, viewer_id, idem_key),
            *_live_holds(show_id, viewer_id, client),
        ],
        [hold_id, f"{hold_id}|{sku}|{qty}"],
    )


def reserve(
    *,
    hold_id: str,
    show_id: str,
    viewer_id: str,
    sku: str,
    qty: int,
    expires_ms: int,
    idem_key: str,
    reap_batch: int,
    default_limit: int = 0,
    client: str = "",
    address_multiple: int = 0,
) -> ScriptCall:
    """A buy click's second step, in the SKU's slot, once :func:`admit` let it through (with
    the hold id it claimed and the expiry it counted). Answers ``{status, available, hold,
    info1, info2, reaped...}``. ``default_limit``: the per-buyer limit of an item whose line-up
    sets none; ``client``'s viewers together may hold and buy ``address_multiple`` buyers'
    limits."""
    return ScriptCall(
        "reserve",
        [*_shelf(sku), keys.offers(sku), keys.sku_channel(sku)],
        [
            hold_id,
            show_id,
            viewer_id,
            sku,
            qty,
            expires_ms,
            idem_key,
            reap_batch,
            default_limit,
            client,
            address_multiple,
        ],
    )


def click(
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
    index_ms: int,
    default_limit: int = 0,
    client: str = "",
    address_multiple: int = 0,
    live_holds: int = 0,
    rate: tuple[int, float] = (0, 0.0),
) -> ScriptCall:
    """A whole buy click in one call, on a single Redis only (its keys are of two hash slots):
    :func:`admit`'s checks, then :func:`reserve` with the expiry admit counted, then admit's
    claim of the hold id only if reserve made the hold (so nothing is given back). Answers
    ``{'admit', admit's answer...}`` for a click the first step did not let through, else
    ``{'reserve', reserve's answer...}``; a hold made puts its SKU in the sweepers' index until
    ``index_ms`` past the hold's expiry. The arguments are the two steps'."""
    first = admit(
        hold_id=hold_id,
        show_id=show_id,
        viewer_id=viewer_id,
        sku=sku,
        qty=qty,
        hold_ms=hold_ms,
        idem_key=idem_key,
        idem_seconds=idem_seconds,
        client=client,
        address_multiple=address_multiple,
        live_holds=live_holds,
        rate=rate,
    )
    second = reserve(
        hold_id=hold_id,
        show_id=show_id,
        viewer_id=viewer_id,
        sku=sku,
        qty=qty,
        expires_ms=0,  # admit's, passed on inside the script
        idem_key=idem_key,
        reap_batch=reap_batch,
        default_limit=default_limit,
        client=client,
        address_multiple=address_multiple,
    )
    return ScriptCall(
        "click",
        [*second.keys, *first.keys, keys.HOLD_SKUS],
        [*first.args, show_id, idem_key, reap_batch, default_limit, index_ms],
    )


def _live_holds(show_id: str, viewer_id: str, client: str) -> list[str]:
    """The two sets of live holds a hold counts in: its viewer's and its address's."""
    return [keys.live_holds(show_id, viewer_id), keys.address_live_holds(show_id, client)]


def release(*, sku: str, hold_id: str, viewer_id: str | None) -> ScriptCall:
    """Give a held hold back (``viewer_id=None``: the system). ``{status, available, hold}``.
    (The hold then leaves its viewer's and address's live holds, in the show's slot.)"""
    return ScriptCall("release", [*_shelf(sku), keys.sku_channel(sku)], [hold_id, viewer_id or ""])


def confirm(*, sku: str, hold_id: str, order_id: str) -> ScriptCall:
    """Held to sold for ``order_id`` while the hold lives. ``{status, available, hold}``.
    (The hold then leaves its viewer's and address's live holds, in the show's slot.)"""
    return ScriptCall("confirm", [*_shelf(sku), keys.sku_channel(sku)], [hold_id, order_id])


def expire(*, sku: str, batch: int, keep_finished_ms: int) -> ScriptCall:
    """Expire up to ``batch`` due holds of ``sku``. ``{available, idle, expired hold...}``."""
    return ScriptCall("expire", _shelf(sku), [batch, keep_finished_ms])


def unindex(*, sku: str, score: int) -> ScriptCall:
    """Take ``sku`` out of the sweepers' index if its score is still ``score``."""
    return ScriptCall("unindex", [keys.HOLD_SKUS], [sku, score])


def release_show(*, sku: str, show_id: str) -> ScriptCall:
    """Release the show's held holds of ``sku``. ``{available, released hold...}``."""
    return ScriptCall("release_show", _shelf(sku), [show_id])


def stock_lock(*, step: str, change: str, lease_ms: int) -> ScriptCall:
    """Open (``step="open"``) or close a change of on-hand counts: ``ok``, or for ``open``
    ``unready``, ``busy`` or ``interrupted``."""
    return ScriptCall("stock_lock", [keys.STOCK_READY, keys.STOCK_BATCH], [step, change, lease_ms])


def stock_set(*, step: str, sku: str, target: int, before: int) -> ScriptCall:
    """One row (``sku`` to ``target``, from ``before`` in SQLite) of a change of on-hand
    counts, step ``prepare`` or ``finish``: ``{"ok"}``, ``{"unready"}``, for ``prepare``
    ``{"conflict", on_hand, held, sold}``, for ``finish`` ``{"ok", shortfall}``."""
    return ScriptCall("stock_set", [keys.stock(sku)], [step, target, before])


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
            keys.sku_channel(sku),
        ],
        [order_id, total, known, buyer, sku, show_id],
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


def mirror(*, show_id: str, state: str, replay: bool, offers: Mapping[str, str]) -> ScriptCall:
    """Write the show's mirror: its ``state``, ``replay`` flag and line-up (SKU ->
    ``price|currency|limit``); answers the line-up's SKUs before."""
    args: list[object] = [state, int(replay)]
    for sku, offer in offers.items():
        args.extend([sku, offer])
    return ScriptCall("mirror", [keys.show(show_id), keys.lineup(show_id)], args)


def room_state(*, show_id: str, viewer_id: str, client: str) -> ScriptCall:
    """Read the room as a snapshot shows it, as of one sequence number."""
    return ScriptCall(
        "room_state",
        [
            keys.show_seq(show_id),
            keys.show(show_id),
            keys.show_requests(show_id),
            keys.show_request_order(show_id),
            keys.show_chat(show_id),
            keys.viewer_plants(show_id, viewer_id),
            keys.viewer_notify(show_id, viewer_id),
            keys.show_plants(show_id),
            keys.show_mutes(show_id),
        ],
        [viewer_id, "@" + client],
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
