"""One table of cases run against the pure rules and their Lua twins on a real Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis

from livesale import keys
from livesale.catalogue import state as stock_rules
from livesale.errors import InvalidTransition, LimitExceeded, SoldOut, StockConflict
from livesale.lua import SOURCES, ScriptCall, calls
from livesale.orders import state
from livesale.orders.holds import to_hold
from livesale.shows.store import _over
from livesale.values import StockLevel

SKU, SHOW, OTHER_SHOW = "LIP-RED", "sh_table", "sh_other"
LONG, NOW = 300_000, 0  # hold lifetimes in ms: far in the future, or already over

Op = tuple[Any, ...]

# Each case: on-hand, per-buyer limit, then operations. ("reserve", viewer, qty, idem, ttl)
# ("release", n, viewer|None) ("confirm", n, order) ("expire",) ("release_show", show)
# ("show", state) (state "replay": ended, its replay on sale) ("adjust", delta)
# ("set", on_hand); n is the n-th reserve of the case.
# ("return", order, viewer, total, known): a cancelled or refunded order gives units back.
# ("reserve_from", viewer, qty, idem, ttl, address): a click counted against an address too;
# every case runs with a default per-buyer limit of DEFAULT_LIMIT when its own limit is 0 and
# an address cap of ADDRESS_MULTIPLE buyers' limits.
DEFAULT_LIMIT, ADDRESS_MULTIPLE = 50, 2

CASES: dict[str, tuple[int, int, list[Op]]] = {
    "one address holds at most its multiple of the limit": (
        20,
        2,
        [
            ("reserve_from", "a", 2, "k1", LONG, "10.0.0.1"),
            ("reserve_from", "b", 2, "k1", LONG, "10.0.0.1"),
            ("reserve_from", "c", 1, "k1", LONG, "10.0.0.1"),
            ("reserve_from", "c", 1, "k1", LONG, "10.0.0.2"),
            ("release", 0, "a"),
            ("reserve_from", "d", 2, "k1", LONG, "10.0.0.1"),
            ("confirm", 4, "or_d"),
            ("reserve_from", "e", 1, "k1", LONG, "10.0.0.1"),
        ],
    ),
    "expired holds give their address its share back": (
        10,
        1,
        [
            ("reserve_from", "a", 1, "k1", NOW, "10.0.0.9"),
            ("reserve_from", "b", 1, "k1", LONG, "10.0.0.9"),
            ("reserve_from", "c", 1, "k1", LONG, "10.0.0.9"),
            ("expire",),
            ("reserve_from", "d", 1, "k1", LONG, "10.0.0.9"),
        ],
    ),
    "the default limit applies when the line-up sets none": (
        100,
        0,
        [("reserve", "a", 30, "k1", LONG), ("reserve", "a", 30, "k2", LONG)],
    ),
    "returned units go back on sale once": (
        5,
        3,
        [
            ("reserve", "a", 3, "k1", LONG),
            ("confirm", 0, "or_1"),
            ("return", "or_1", "a", 1, 0),
            ("return", "or_1", "a", 1, 0),
            ("return", "or_1", "a", 3, 1),
            ("return", "or_1", "a", 3, 3),
            ("reserve", "a", 3, "k2", LONG),
        ],
    ),
    "a return the shelf forgot counts from what the record knows": (
        4,
        0,
        [
            ("reserve", "b", 2, "k1", LONG),
            ("confirm", 0, "or_2"),
            ("return", "or_2", "b", 2, 1),
            ("return", "or_2", "b", 2, 0),
        ],
    ),
    "reserve then sold out": (
        2,
        0,
        [
            ("reserve", "a", 1, "k1", LONG),
            ("reserve", "b", 1, "k1", LONG),
            ("reserve", "c", 1, "k1", LONG),
        ],
    ),
    "qty larger than available": (3, 0, [("reserve", "a", 4, "k1", LONG)]),
    "idempotent retry returns the same hold": (
        5,
        0,
        [("reserve", "a", 2, "k1", LONG), ("reserve", "a", 2, "k1", LONG)],
    ),
    "same key, other qty is a mismatch": (
        5,
        0,
        [("reserve", "a", 2, "k1", LONG), ("reserve", "a", 3, "k1", LONG)],
    ),
    "per-buyer limit counts held": (
        10,
        2,
        [
            ("reserve", "a", 1, "k1", LONG),
            ("reserve", "a", 1, "k2", LONG),
            ("reserve", "a", 1, "k3", LONG),
            ("reserve", "b", 2, "k1", LONG),
        ],
    ),
    "per-buyer limit counts bought": (
        10,
        2,
        [("reserve", "a", 2, "k1", LONG), ("confirm", 0, "or_1"), ("reserve", "a", 1, "k2", LONG)],
    ),
    "release frees stock and the limit": (
        3,
        1,
        [
            ("reserve", "a", 1, "k1", LONG),
            ("release", 0, "a"),
            ("reserve", "a", 1, "k2", LONG),
            ("release", 0, "a"),
        ],
    ),
    "release of another viewer's hold": (
        3,
        0,
        [("reserve", "a", 1, "k1", LONG), ("release", 0, "b")],
    ),
    "confirm moves held to sold once": (
        3,
        0,
        [
            ("reserve", "a", 2, "k1", LONG),
            ("confirm", 0, "or_1"),
            ("confirm", 0, "or_1"),
            ("confirm", 0, "or_2"),
            ("release", 0, "a"),
        ],
    ),
    "confirm of an expired hold": (3, 0, [("reserve", "a", 2, "k1", NOW), ("confirm", 0, "or_1")]),
    "reserve reaps expired holds first": (
        2,
        0,
        [("reserve", "a", 2, "k1", NOW), ("reserve", "b", 2, "k1", LONG)],
    ),
    "sweeper expires only what is due": (
        5,
        0,
        [
            ("reserve", "a", 1, "k1", NOW),
            ("reserve", "b", 1, "k1", LONG),
            ("expire",),
            ("confirm", 0, "or_1"),
        ],
    ),
    "show not live refuses": (5, 0, [("show", "ended"), ("reserve", "a", 1, "k1", LONG)]),
    "a replay sells within the show's limits, until it stops": (
        5,
        2,
        [
            ("reserve", "a", 1, "k1", LONG),
            ("confirm", 0, "or_1"),
            ("show", "replay"),
            ("reserve", "a", 1, "k2", LONG),
            ("reserve", "a", 1, "k3", LONG),
            ("reserve", "b", 2, "k1", LONG),
            ("show", "ended"),
            ("reserve", "c", 1, "k1", LONG),
        ],
    ),
    "retry after the show ended still gets its hold": (
        5,
        0,
        [("reserve", "a", 1, "k1", LONG), ("show", "ended"), ("reserve", "a", 1, "k1", LONG)],
    ),
    "end of show releases only its holds": (
        5,
        0,
        [
            ("reserve", "a", 1, "k1", LONG),
            ("reserve", "b", 2, "k1", LONG),
            ("confirm", 1, "or_1"),
            ("release_show", SHOW),
            ("release_show", OTHER_SHOW),
        ],
    ),
    "on-hand never below held and sold": (
        5,
        0,
        [
            ("reserve", "a", 2, "k1", LONG),
            ("confirm", 0, "or_1"),
            ("reserve", "b", 1, "k1", LONG),
            ("adjust", -3),
            ("set", 3),
            ("adjust", 4),
            ("set", 0),
        ],
    ),
}


@dataclass
class Result:
    status: str
    level: StockLevel
    holds: dict[str, str] = field(default_factory=dict)
    buyers: dict[str, int] = field(default_factory=dict)


def client_of(op: Op) -> str:
    """The address a ``reserve_from`` click comes from ("" for a plain ``reserve``)."""
    return str(op[5]) if op[0] == "reserve_from" else ""


def hold_id(n: int) -> str:
    return f"ho_{n:012d}.{SKU}"


class Pure:
    def __init__(self, on_hand: int, limit: int) -> None:
        self.shelf = state.Shelf(StockLevel(SKU, on_hand, on_hand, 0, 0))
        self.show = "live"
        self.offer = state.Offer(amount=1990, currency="EUR", limit=limit)
        self.reserves = 0

    def now(self) -> int:
        return int(time.time() * 1000)

    def run(self, op: Op) -> str:
        match op:
            case ("reserve" | "reserve_from", viewer, qty, idem, ttl, *_):
                outcome = state.reserve(
                    self.shelf,
                    hold_id=hold_id(self.reserves),
                    show_id=SHOW,
                    viewer_id=viewer,
                    qty=qty,
                    idem_key=idem,
                    show_state="ended" if self.show == "replay" else self.show,
                    replay=self.show == "replay",
                    offer=self.offer,
                    now_ms=self.now(),
                    ttl_ms=ttl,
                    default_limit=DEFAULT_LIMIT,
                    client=client_of(op),
                    address_multiple=ADDRESS_MULTIPLE,
                )
                self.reserves += 1
            case ("release", n, viewer):
                outcome = state.release(self.shelf, hold_id(n), viewer)
            case ("confirm", n, order):
                outcome = state.confirm(self.shelf, hold_id(n), order, self.now())
            case ("expire",):
                self.shelf, _ = state.expire(self.shelf, self.now(), 500)
                return "ok"
            case ("release_show", show):
                self.shelf, _ = state.release_show(self.shelf, show)
                return "ok"
            case ("show", new_state):
                self.show = new_state
                return "ok"
            case ("return", order, viewer, total, known):
                buyer = state.buyer_field(SHOW, viewer)
                outcome = state.return_units(self.shelf, order, buyer, total, known)
            case ("adjust", delta):
                return self._level(lambda lv: stock_rules.adjust(lv, delta))
            case ("set", on_hand):
                return self._level(lambda lv: stock_rules.set_on_hand(lv, on_hand))
        self.shelf = outcome.shelf
        return outcome.status

    def _level(self, change: Any) -> str:
        try:
            self.shelf = replace(self.shelf, level=change(self.shelf.level))
        except StockConflict:
            return "conflict"
        return "ok"

    def result(self, status: str) -> Result:
        return Result(
            status,
            self.shelf.level,
            {h: hold.state.value for h, hold in self.shelf.holds.items()},
            {b: n for b, n in self.shelf.buyers.items() if n},
        )


class Lua:
    """The same operations through the scripts' own call builders, as the stores make them:
    a buy click as one script (``one_call``, a single Redis) or as its two steps (a cluster)."""

    def __init__(self, client: redis.Redis, on_hand: int, limit: int, one_call: bool) -> None:
        self.r = client
        self.one_call = one_call
        self.scripts = {name: client.register_script(source) for name, source in SOURCES.items()}
        client.set(keys.STOCK_READY, "1")
        client.hset(
            keys.stock(SKU),
            mapping={"on_hand": on_hand, "available": on_hand, "held": 0, "sold": 0, "ready": 1},
        )
        self.offer = f"1990|EUR|{limit}"
        client.hset(keys.lineup(SHOW), SKU, self.offer)
        self._show("live")
        self.reserves = 0

    def _show(self, new_state: str) -> None:
        """The show's mirror, and its offer in the SKU's slot, as the show store writes them."""
        ended = "ended" if new_state == "replay" else new_state
        replay = int(new_state == "replay")
        self.r.hset(keys.show(SHOW), mapping={"state": ended, "replay": replay})
        if new_state in ("live", "replay"):
            self.r.hset(keys.offers(SKU), SHOW, f"{self.offer}|{new_state}|0")
        else:
            self.r.hdel(keys.offers(SKU), SHOW)

    def _reserve(self, op: Op) -> str:
        """A buy click as the hold store makes it: admit, then reserve, then unadmit if
        refused; or the one script that does all three."""
        viewer, qty, idem, ttl = op[1:5]
        hold = hold_id(self.reserves)
        self.reserves += 1
        client = client_of(op)
        click: dict[str, Any] = dict(hold_id=hold, show_id=SHOW, viewer_id=viewer, sku=SKU)
        click |= dict(qty=qty, idem_key=idem, client=client, address_multiple=ADDRESS_MULTIPLE)
        first: dict[str, Any] = dict(hold_ms=ttl, idem_seconds=86400)
        second: dict[str, Any] = dict(reap_batch=10, default_limit=DEFAULT_LIMIT)
        if self.one_call:
            step, status = self.call(calls.click(**click, **first, **second, index_ms=60_000))[:2]
            assert step in (b"admit", b"reserve")
            return str(status.decode())
        admitted = self.call(calls.admit(**click, **first))
        if admitted[0] != b"ok":
            return str(admitted[0].decode())
        out = self.call(calls.reserve(**click, **second, expires_ms=int(admitted[4])))
        if out[0] != b"ok":
            click.pop("address_multiple")
            self.call(calls.unadmit(**click))
        return str(out[0].decode())

    def call(self, call: ScriptCall) -> Any:
        return self.scripts[call.name](keys=call.keys, args=call.args)

    def run(self, op: Op) -> str:
        match op:
            case ("reserve" | "reserve_from", *_):
                return self._reserve(op)
            case ("release", n, viewer):
                out = self.call(calls.release(sku=SKU, hold_id=hold_id(n), viewer_id=viewer))
            case ("confirm", n, order):
                out = self.call(calls.confirm(sku=SKU, hold_id=hold_id(n), order_id=order))
            case ("expire",):
                self.call(calls.expire(sku=SKU, batch=500, keep_finished_ms=86_400_000))
                return "ok"
            case ("release_show", show):
                self.call(calls.release_show(sku=SKU, show_id=show))
                return "ok"
            case ("show", new_state):
                self._show(new_state)
                return "ok"
            case ("return", order, viewer, total, known):
                out = self.call(
                    calls.stock_return(
                        sku=SKU,
                        show_id=SHOW,
                        order_id=order,
                        buyer=state.buyer_field(SHOW, viewer),
                        total=total,
                        known=known,
                    )
                )
            case ("adjust", delta):
                return self._set(int(self.r.hget(keys.stock(SKU), "on_hand") or 0) + delta)
            case ("set", on_hand):
                return self._set(on_hand)
        return str(out[0].decode())

    def _set(self, on_hand: int) -> str:
        """Both steps of a stock change, as the catalogue makes them around its commit."""
        before = int(self.r.hget(keys.stock(SKU), "on_hand") or 0)
        lock: dict[str, Any] = dict(change="sb_t", lease_ms=30_000)
        assert self.call(calls.stock_lock(step="open", **lock)) == b"ok"
        row: dict[str, Any] = dict(sku=SKU, target=on_hand, before=before)
        status = str(self.call(calls.stock_set(step="prepare", **row))[0].decode())
        if status == "ok":
            self.call(calls.stock_set(step="finish", **row))
        self.call(calls.stock_lock(step="close", **lock))
        return status

    def result(self, status: str) -> Result:
        values = self.r.hmget(keys.stock(SKU), ["on_hand", "available", "held", "sold"])
        holds = {
            k.decode(): to_hold(v).state.value for k, v in self.r.hgetall(keys.holds(SKU)).items()
        }
        buyers = {k.decode(): int(v) for k, v in self.r.hgetall(keys.buyers(SKU)).items() if int(v)}
        return Result(status, StockLevel(SKU, *(int(v or 0) for v in values)), holds, buyers)


@pytest.mark.parametrize("one_call", [False, True], ids=["two-steps", "one-call"])
@pytest.mark.parametrize("name", list(CASES))
def test_pure_and_lua_agree(name: str, one_call: bool, redis_client: redis.Redis) -> None:
    """Every step of the case gives the same answer, counters, holds and buyer counts, with a
    buy click as its two scripts and as the one script of a single Redis."""
    on_hand, limit, ops = CASES[name]
    pure, lua = Pure(on_hand, limit), Lua(redis_client, on_hand, limit, one_call)
    for op in ops:
        expected = pure.result(pure.run(op))
        got = lua.result(lua.run(op))
        assert got == expected, f"{name}: {op}"
        stock_rules.check(got.level)


def test_refusals_raise_their_problems() -> None:
    """A refused reserve maps to the problem the HTTP contract names, with its members."""
    shelf = state.Shelf(StockLevel(SKU, 1, 1, 0, 0))
    kwargs: dict[str, Any] = dict(
        show_id=SHOW,
        viewer_id="a",
        idem_key="k",
        now_ms=0,
        ttl_ms=LONG,
        offer=state.Offer(100, "EUR", limit=1),
    )
    empty = replace(shelf, level=StockLevel(SKU, 1, 0, 1, 0))
    with pytest.raises(SoldOut) as sold_out:
        state.raise_for(state.reserve(empty, hold_id="h", qty=1, show_state="live", **kwargs))
    assert sold_out.value.extra == {"available": 0}
    with pytest.raises(LimitExceeded):
        state.raise_for(state.reserve(shelf, hold_id="h", qty=2, show_state="live", **kwargs))
    with pytest.raises(InvalidTransition):
        state.raise_for(state.reserve(shelf, hold_id="h", qty=1, show_state="ended", **kwargs))


def test_order_state_machine() -> None:
    """Orders only move forward: a confirmed order may still be cancelled or refunded;
    declined, expired, cancelled and refunded are final."""
    S = state.OrderState
    assert state.order_transition(S.PENDING, S.AUTHORIZED) is S.AUTHORIZED
    assert state.order_transition(S.AUTHORIZED, S.CONFIRMED) is S.CONFIRMED
    assert state.order_transition(S.CONFIRMED, S.CANCELLED) is S.CANCELLED
    assert state.order_transition(S.CONFIRMED, S.REFUNDED) is S.REFUNDED
    for final in (S.CONFIRMED, S.DECLINED, S.EXPIRED, S.CANCELLED, S.REFUNDED):
        with pytest.raises(InvalidTransition):
            state.order_transition(final, S.AUTHORIZED)
    for final in (S.DECLINED, S.EXPIRED, S.CANCELLED, S.REFUNDED):
        with pytest.raises(InvalidTransition):
            state.order_transition(final, S.CANCELLED if final is not S.CANCELLED else S.REFUNDED)
    with pytest.raises(InvalidTransition):
        state.order_transition(S.PENDING, S.CONFIRMED)


@pytest.mark.parametrize("one_call", [False, True], ids=["two-steps", "one-call"])
def test_an_offer_past_its_replay_sells_nothing(one_call: bool, redis_client: redis.Redis) -> None:
    """The SKU's copy of a show's offer carries when the replay's sales end: past it, the
    click's second step refuses as not live even if the show's own mirror still says the
    replay sells, and takes no stock."""
    lua = Lua(redis_client, 5, 0, one_call)
    lua._show("replay")
    ended = int(time.time() * 1000) - 1
    redis_client.hset(keys.offers(SKU), SHOW, f"{lua.offer}|replay|{ended}")
    assert lua.run(("reserve", "a", 1, "k1", LONG)) == "not_live"
    assert int(redis_client.hget(keys.stock(SKU), "available") or 0) == 5
    assert not redis_client.exists(keys.idempotency(SHOW, "a", "k1"))  # given back
    redis_client.hset(keys.offers(SKU), SHOW, f"{lua.offer}|replay|{ended + 3_600_000}")
    assert lua.run(("reserve", "a", 1, "k1", LONG)) == "ok"


def test_offers_past_their_replay_are_told_apart() -> None:
    now = time.time() * 1000
    assert _over(b"990|EUR|0|replay|%d" % (now - 1), now)
    assert not _over(b"990|EUR|0|replay|%d" % (now + 1000), now)
    assert not _over(b"990|EUR|0|live|0", now)
