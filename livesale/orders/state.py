"""Hold and order rules, pure: no I/O, no ``await``.

The hold scripts in ``livesale/lua`` perform exactly these changes atomically in Redis;
``tests/orders/test_state.py`` runs one table of cases against both and compares the results.
Every function returns the new shelf or raises, leaving its input untouched. (The stock rules
that only move on-hand are the catalogue's: :mod:`livesale.catalogue.state`.)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from livesale.errors import (
    Banned,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    SoldOut,
)
from livesale.values import StockLevel

# --- holds ------------------------------------------------------------------------------------
#
# One SKU's shelf: its counters, its holds, the per-buyer counts and the idempotency records.
# ``reserve``, ``release``, ``confirm``, ``expire`` and ``release_show`` return an
# :class:`Outcome` with the new shelf and never raise for a refusal, because a refused reserve
# may still have reaped expired holds; :func:`raise_for` turns a refusal into its error.


class HoldState(enum.Enum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Hold:
    """Units of one SKU reserved for one buyer until ``expires_at`` (ms, Redis time)."""

    hold_id: str
    sku: str
    show_id: str
    viewer_id: str
    qty: int
    amount: int
    currency: str
    expires_at: int
    state: HoldState = HoldState.HELD
    order_id: str = ""
    idem_key: str = ""
    #: The client address it counts against too ("" when none).
    addr: str = ""

    @property
    def buyer(self) -> str:
        """The per-buyer counter this hold counts against: ``<show>|<viewer>``."""
        return buyer_field(self.show_id, self.viewer_id)


def address_field(show_id: str, address: str) -> str:
    """The counter of what one client address holds and bought in a show."""
    return f"{show_id}|@{address}"


def buyer_field(show_id: str, viewer_id: str) -> str:
    return f"{show_id}|{viewer_id}"


@dataclass(frozen=True)
class Offer:
    """A line-up entry as the buy path sees it: the show price and the per-buyer limit."""

    amount: int
    currency: str
    limit: int = 0  # 0: no limit


@dataclass(frozen=True)
class Shelf:
    level: StockLevel
    holds: Mapping[str, Hold] = field(default_factory=dict)
    buyers: Mapping[str, int] = field(default_factory=dict)
    #: ``<show>|<viewer>|<idempotency key>`` -> (hold id, fingerprint ``sku|qty``): a key is
    #: the buyer's own, within one show
    idem: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: order id -> units of that order already back in ``available`` (cancelled, refunded)
    returned: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a hold rule decided. ``status`` is ``ok`` or the reason for refusing."""

    status: str
    shelf: Shelf
    hold: Hold | None = None
    reaped: tuple[Hold, ...] = ()
    limit: int = 0
    current: int = 0
    show_state: str = ""

    @property
    def available(self) -> int:
        return self.shelf.level.available


#: How many expired holds a reserve call returns to ``available`` before doing its own work.
REAP_BATCH = 10


def fingerprint(sku: str, qty: int) -> str:
    """What an idempotency key is bound to: the same key with another body is refused."""
    return f"{sku}|{qty}"


def _end_hold(shelf: Shelf, hold: Hold, state: HoldState) -> Shelf:
    """Return a held hold's units to ``available`` and drop them from the buyer's count."""
    level = shelf.level
    new_level = StockLevel(
        level.sku, level.on_hand, level.available + hold.qty, level.held - hold.qty, level.sold
    )
    holds = dict(shelf.holds)
    holds[hold.hold_id] = replace(hold, state=state)
    buyers = _less(shelf.buyers, hold.buyer, hold.qty)
    if hold.addr:
        buyers = _less(buyers, address_field(hold.show_id, hold.addr), hold.qty)
    return replace(shelf, level=new_level, holds=holds, buyers=buyers)


def _less(buyers: Mapping[str, int], field: str, units: int) -> dict[str, int]:
    """``buyers`` with ``units`` fewer on ``field``; a count down to nothing is dropped, so
    the per-buyer counts grow with the buyers who hold or bought something, not with all."""
    out = dict(buyers)
    left = out.pop(field, 0) - units
    if left > 0:
        out[field] = left
    return out


def expire(shelf: Shelf, now_ms: int, batch: int = REAP_BATCH) -> tuple[Shelf, tuple[Hold, ...]]:
    """Expire up to ``batch`` held holds whose time is up (oldest expiry first)."""
    due = sorted(
        (h for h in shelf.holds.values() if h.state is HoldState.HELD and h.expires_at <= now_ms),
        key=lambda h: (h.expires_at, h.hold_id),
    )[:batch]
    for hold in due:
        shelf = _end_hold(shelf, hold, HoldState.EXPIRED)
    return shelf, tuple(replace(h, state=HoldState.EXPIRED) for h in due)


def reserve(
    shelf: Shelf,
    *,
    hold_id: str,
    show_id: str,
    viewer_id: str,
    qty: int,
    idem_key: str,
    show_state: str,
    offer: Offer | None,
    now_ms: int,
    ttl_ms: int,
    default_limit: int = 0,
    client: str = "",
    address_multiple: int = 0,
    replay: bool = False,
) -> Outcome:
    """A buy click. Checks, in order: idempotency (same key: the same hold, as it is; same
    key with another SKU or qty: ``mismatch``), the show is live (or ended with its replay on
    sale, ``replay``), the SKU is on the line-up; then expired holds are reaped, and it checks
    the per-buyer limit (held plus bought; ``default_limit`` when the line-up sets none), the
    client address's cap (``address_multiple`` times that limit, held plus bought by every
    viewer of the address: ``address_limit``), ``available >= qty``; then moves ``qty`` from
    available to held in a new hold priced from the offer.

    The checks before the reaping are the show's, made in its hash slot (``admit``); the
    rest are the SKU's (``reserve``); on a single Redis both run in one script (``click``).
    The show's other rules, made with the first (bans, and how many holds a viewer or an
    address has live at once across the show's items), read the show's keys, not one SKU's
    shelf: the script checks them and the tests of the room's caps cover them."""
    sku = shelf.level.sku
    idem = f"{show_id}|{viewer_id}|{idem_key}"
    record = shelf.idem.get(idem)
    if record is not None:
        if record[1] != fingerprint(sku, qty):
            return Outcome("mismatch", shelf)
        return Outcome("existing", shelf, hold=shelf.holds[record[0]])
    if show_state != "live" and not (show_state == "ended" and replay):
        return Outcome("not_live", shelf, show_state=show_state)
    if offer is None:
        return Outcome("not_on_lineup", shelf)
    shelf, reaped = expire(shelf, now_ms)
    buyer = buyer_field(show_id, viewer_id)
    current = shelf.buyers.get(buyer, 0)
    limit = offer.limit or default_limit
    if limit and current + qty > limit:
        return Outcome("limit", shelf, reaped=reaped, limit=limit, current=current)
    addr = client
    cap = limit * address_multiple
    if addr and cap > 0:
        used = shelf.buyers.get(address_field(show_id, addr), 0)
        if used + qty > cap:
            return Outcome("address_limit", shelf, reaped=reaped, limit=cap, current=used)
    level = shelf.level
    if level.available < qty:
        return Outcome("sold_out", shelf, reaped=reaped)
    hold = Hold(
        hold_id=hold_id,
        sku=sku,
        show_id=show_id,
        viewer_id=viewer_id,
        qty=qty,
        amount=offer.amount,
        currency=offer.currency,
        expires_at=now_ms + ttl_ms,
        idem_key=idem_key,
        addr=addr,
    )
    new_level = StockLevel(sku, level.on_hand, level.available - qty, level.held + qty, level.sold)
    buyers = {**shelf.buyers, buyer: current + qty}
    if addr:
        field = address_field(show_id, addr)
        buyers[field] = buyers.get(field, 0) + qty
    shelf = Shelf(
        level=new_level,
        holds={**shelf.holds, hold_id: hold},
        buyers=buyers,
        idem={**shelf.idem, idem: (hold_id, fingerprint(sku, qty))},
        returned=shelf.returned,
    )
    return Outcome("ok", shelf, hold=hold, reaped=reaped)


def release(shelf: Shelf, hold_id: str, viewer_id: str | None) -> Outcome:
    """The buyer (or, with ``viewer_id=None``, the system) gives a held hold back.

    ``gone`` for an unknown hold, ``forbidden`` for another viewer's, ``not_held`` when it is
    no longer held (released, expired or confirmed); nothing changes then."""
    hold = shelf.holds.get(hold_id)
    if hold is None:
        return Outcome("gone", shelf)
    if viewer_id is not None and hold.viewer_id != viewer_id:
        return Outcome("forbidden", shelf)
    if hold.state is not HoldState.HELD:
        return Outcome("not_held", shelf, hold=hold)
    shelf = _end_hold(shelf, hold, HoldState.RELEASED)
    return Outcome("ok", shelf, hold=shelf.holds[hold_id])


def confirm(shelf: Shelf, hold_id: str, order_id: str, now_ms: int) -> Outcome:
    """Checkout succeeded: a live hold's units move from held to sold, once.

    ``ok`` (also when this order already confirmed it), ``taken`` when another order did,
    ``gone`` for an unknown hold, ``expired`` when the hold is no longer live (a hold whose
    time is up is expired here and its units returned)."""
    hold = shelf.holds.get(hold_id)
    if hold is None:
        return Outcome("gone", shelf)
    if hold.state is HoldState.CONFIRMED:
        return Outcome("ok" if hold.order_id == order_id else "taken", shelf, hold=hold)
    if hold.state is not HoldState.HELD:
        return Outcome("expired", shelf, hold=hold)
    if hold.expires_at <= now_ms:
        shelf = _end_hold(shelf, hold, HoldState.EXPIRED)
        return Outcome("expired", shelf, hold=shelf.holds[hold_id])
    level = shelf.level
    new_level = StockLevel(
        level.sku, level.on_hand, level.available, level.held - hold.qty, level.sold + hold.qty
    )
    confirmed = replace(hold, state=HoldState.CONFIRMED, order_id=order_id)
    shelf = replace(shelf, level=new_level, holds={**shelf.holds, hold_id: confirmed})
    return Outcome("ok", shelf, hold=confirmed)


def release_show(shelf: Shelf, show_id: str) -> tuple[Shelf, tuple[Hold, ...]]:
    """The show's grace period is over: release every hold of ``show_id`` still held, and
    forget what its buyers hold and bought (the show takes no more holds to limit)."""
    ended: list[Hold] = []
    for hold in sorted(shelf.holds.values(), key=lambda h: (h.expires_at, h.hold_id)):
        if hold.show_id == show_id and hold.state is HoldState.HELD:
            shelf = _end_hold(shelf, hold, HoldState.RELEASED)
            ended.append(shelf.holds[hold.hold_id])
    prefix = show_id + "|"
    buyers = {b: n for b, n in shelf.buyers.items() if not b.startswith(prefix)}
    return replace(shelf, buyers=buyers), tuple(ended)


def return_units(shelf: Shelf, order_id: str, buyer: str, total: int, known: int) -> Outcome:
    """A cancelled or refunded order gives units back: they move from sold to ``available``
    and out of ``buyer``'s count, each once. ``total`` is what the order has given back in all,
    ``known`` how many of them the record already knows are back (after a rebuild the shelf
    has forgotten); only the rest moves, however often this is repeated."""
    before = max(shelf.returned.get(order_id, 0), known)
    units = total - before
    if units <= 0:
        return Outcome("ok", shelf)
    level = shelf.level
    new_level = StockLevel(
        level.sku, level.on_hand, level.available + units, level.held, level.sold - units
    )
    buyers = _less(shelf.buyers, buyer, units)
    returned = {**shelf.returned, order_id: total}
    return Outcome(
        "ok", replace(shelf, level=new_level, buyers=buyers, returned=returned), current=units
    )


#: The limits a buy click can reach: what the buyer reads, and the problem's ``scope``.
_LIMITS: dict[str, tuple[str, str | None]] = {
    "limit": ("at most {limit} per buyer; you have {current}", None),
    "address_limit": (
        "at most {limit} of this item per network, and buyers on yours already have {current}",
        "address",
    ),
    "hold_limit": (
        "at most {limit} holds at once in this show; check out or release one of your"
        " {current} first",
        "holds",
    ),
    "address_hold_limit": (
        "at most {limit} holds at once in this show per network, and buyers on yours already"
        " have {current}",
        "address_holds",
    ),
}


def raise_for(outcome: Outcome) -> None:
    """Raise the error a refused :func:`reserve`, :func:`release` or :func:`confirm` means."""
    if outcome.status in _LIMITS:
        text, scope = _LIMITS[outcome.status]
        counts: dict[str, Any] = {"limit": outcome.limit, "current": outcome.current}
        if scope:
            counts["scope"] = scope
        raise LimitExceeded(text.format(**counts), **counts)
    match outcome.status:
        case "ok" | "existing":
            return
        case "mismatch":
            raise IdempotencyMismatch("this idempotency key was used for another SKU or quantity")
        case "not_live":
            raise InvalidTransition(
                f"the show is {outcome.show_state or 'not live'}; it takes no holds",
                state=outcome.show_state or None,
            )
        case "not_on_lineup":
            raise Conflict("this SKU is not on the show's line-up")
        case "banned":
            raise Banned("the host removed you from this show")
        case "sold_out":
            raise SoldOut(f"only {outcome.available} left", available=outcome.available)
        case "gone":
            raise NotFound("no such hold")
        case "forbidden":
            raise Forbidden("this hold belongs to another viewer")
        case "not_held" | "expired" | "taken":
            state = outcome.hold.state.value if outcome.hold else outcome.status
            raise InvalidTransition(f"the hold is {state}", state=state)
    raise ValueError(f"unknown outcome {outcome.status!r}")


# --- orders -----------------------------------------------------------------------------------


class OrderState(enum.Enum):
    """``pending`` (written, not yet authorized) → ``authorized`` → ``confirmed`` (units sold);
    final refusals: ``declined`` (payment refused), ``expired`` (hold gone before it was
    confirmed; payment voided), ``cancelled`` (checkout interrupted, or the merchant cancelled
    a confirmed order before capture: payment voided, units back on sale); ``refunded`` (every
    unit of a confirmed order refunded; a partial refund leaves it ``confirmed``)."""

    PENDING = "pending"
    AUTHORIZED = "authorized"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


_ORDER_MOVES: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING: frozenset(
        {OrderState.AUTHORIZED, OrderState.DECLINED, OrderState.CANCELLED, OrderState.EXPIRED}
    ),
    OrderState.AUTHORIZED: frozenset(
        {OrderState.CONFIRMED, OrderState.EXPIRED, OrderState.CANCELLED}
    ),
    OrderState.CONFIRMED: frozenset({OrderState.CANCELLED, OrderState.REFUNDED}),
    OrderState.DECLINED: frozenset(),
    OrderState.EXPIRED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REFUNDED: frozenset(),
}

#: Units an order holds as sold, in SQL over the orders table: every unit of a confirmed
#: order, less those it gave back that are back on sale (a cancelled or refunded order's
#: units count as sold until they are). Stock rebuilds and the invariant checks use it.
SOLD_UNITS_SQL = (
    "CASE WHEN state = 'confirmed' OR returned_qty > 0 THEN qty - restocked_qty ELSE 0 END"
)

#: Orders still on their way to a final state; recovery drives them on after a crash.
IN_FLIGHT = (OrderState.PENDING, OrderState.AUTHORIZED)


def order_transition(current: OrderState, target: OrderState) -> OrderState:
    """``target`` if an order in ``current`` may move there; :class:`InvalidTransition` else."""
    if target not in _ORDER_MOVES[current]:
        raise InvalidTransition(f"order is {current.name.lower()}", state=current.value)
    return target
