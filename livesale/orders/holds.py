"""Holds in Redis: the buy click, release, confirm, expiry and the end-of-show release.

Every change is one Lua script (``livesale/lua``, called through :mod:`livesale.lua.calls`)
mirroring a rule of :mod:`livesale.orders.state`, in one hash slot (but a buy click on a Redis
Cluster, which is two: the show's rules, then the SKU's stock); this module only builds the
keys, calls the scripts and turns their answers into an :class:`~livesale.orders.state.Outcome`.
A hold id carries its SKU (``ho_<random>.<sku>``) so any process finds the hold's keys without
a lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import msgspec
import redis.asyncio as aioredis

from livesale import events, keys, limits
from livesale.errors import LivesaleError, NotFound, Unavailable, map_redis_errors
from livesale.ids import new_id
from livesale.lua import Scripts, calls
from livesale.lua.pipeline import ScriptBatcher
from livesale.money import Money, Total
from livesale.orders import state
from livesale.orders.messages import HoldOut
from livesale.values import StockLevel

log = logging.getLogger("livesale.orders")

#: How many expired holds one sweep of one SKU returns to ``available``, and how many finished
#: holds it forgets.
SWEEP_BATCH = 500
#: How far past a hold's latest possible expiry the sweepers' index keeps its SKU: room for
#: the clocks of this process and of Redis to differ.
INDEX_SLACK_MS = 60_000
#: How long a click waits for the hold of the same click sent a moment before (between its two
#: steps) before answering it is gone.
EXISTING_WAIT_SECONDS = 5.0
#: How long a click is made afresh while the same click, sent at once, keeps claiming its key
#: and being refused.
CLICK_SECONDS = 30.0


class HoldRecord(msgspec.Struct, frozen=True):
    """A hold as the Lua scripts store it (JSON in the SKU's holds hash)."""

    id: str
    sku: str
    show: str
    viewer: str
    qty: int
    amount: int
    currency: str
    exp: int
    state: str
    order: str = ""
    idem: str = ""
    addr: str = ""


_decode_record = msgspec.json.Decoder(HoldRecord).decode


def to_hold(raw: bytes | str) -> state.Hold:
    """A stored hold record as a :class:`~livesale.orders.state.Hold`."""
    r = _decode_record(raw)
    return state.Hold(
        hold_id=r.id,
        sku=r.sku,
        show_id=r.show,
        viewer_id=r.viewer,
        qty=r.qty,
        amount=r.amount,
        currency=r.currency,
        expires_at=int(r.exp),
        state=state.HoldState(r.state),
        order_id=r.order,
        idem_key=r.idem,
        addr=r.addr,
    )


def hold_out(hold: state.Hold) -> HoldOut:
    """The wire shape of a hold (HTTP answers and room events)."""
    return HoldOut(
        hold_id=hold.hold_id,
        show_id=hold.show_id,
        sku=hold.sku,
        qty=hold.qty,
        state=hold.state.value,
        expires_at=hold.expires_at / 1000,
        price=Money(amount=hold.amount, currency=hold.currency),
        total=Total(amount=hold.amount * hold.qty, currency=hold.currency),
    )


def new_hold_id(sku: str) -> str:
    return f"{new_id('ho')}.{sku}"


def sku_of(hold_id: str) -> str:
    """The SKU a hold id carries; :class:`NotFound` for anything that is not a hold id."""
    prefix, dot, sku = hold_id.partition(".")
    if not dot or not prefix.startswith("ho_") or not sku:
        raise NotFound("no such hold")
    return sku


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HoldStore:
    """Runs the hold scripts for every process; safe to call concurrently from anywhere."""

    def __init__(
        self,
        redis: aioredis.Redis,
        scripts: Scripts,
        hold_seconds: int,
        *,
        keep_finished_seconds: int = 600,
        default_limit: int = 0,
        address_multiple: int = 0,
        live_holds: int = 0,
        rate: tuple[int, float] = (0, 0.0),
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.batcher = ScriptBatcher(redis, scripts)
        #: A buy click is one script call on a single Redis; a cluster runs its two steps
        #: apart, each in its own hash slot.
        self.one_call = scripts.has("click")
        self.hold_ms = hold_seconds * 1000
        #: A finished hold stays readable this long (retried clicks, checkout answers,
        #: recovery), then the sweeper forgets it.
        self.keep_finished_ms = keep_finished_seconds * 1000
        #: A click's idempotency record lives while its hold may: a retry gets the same hold.
        self.idem_seconds = max(hold_seconds, keep_finished_seconds)
        #: The per-buyer limit of items whose line-up sets none, and the address cap's multiple.
        self.default_limit = default_limit
        self.address_multiple = address_multiple
        #: How many holds one viewer may have live at once in a show (0: no cap).
        self.live_holds = live_holds
        #: The buy clicks one client address may send in a show: ``(burst, per second)``.
        self.rate = rate
        #: SKU -> the score this process last gave it in the sweepers' index, and the write
        #: of it under way.
        self._indexed: dict[str, int] = {}
        self._indexing: dict[str, asyncio.Future[None]] = {}
        #: Told the SKU whose counters a script found without their ``ready`` mark (Redis
        #: lost them): the orders component rebuilds stock.
        self.on_unready: Callable[[str], None] | None = None
        #: Whether the store of record says a show sells now: asked when a show's mirror is
        #: missing from Redis (gone with an ended show, or lost with Redis's data).
        self.selling: Callable[[str], Awaitable[bool]] | None = None

    def unready(self, sku: str) -> None:
        if self.on_unready is not None:
            self.on_unready(sku)

    async def reserve(
        self,
        show_id: str,
        viewer_id: str,
        sku: str,
        qty: int,
        idem_key: str,
        *,
        client: str = "",
    ) -> state.Outcome:
        """One buy click (see :func:`livesale.orders.state.reserve`), rate-limited per
        ``client`` address in the show (:class:`RateLimited`).

        Two steps: ``admit`` applies the show's rules (the rate, the click's idempotency key,
        the show's state, bans, the holds a viewer or an address has live across the show's
        items) and claims a hold id; ``reserve`` then takes the stock, and if it refuses,
        ``unadmit`` gives back what ``admit`` took. A Redis Cluster runs them as scripts apart,
        each in its own hash slot (the show's, then the SKU's). On a single Redis they are one
        script call (``click``), which claims the hold id only once the stock is taken, so a
        refused click needs nothing given back. A retried click (the same key) is answered with
        its hold, read as it is now.

        Returns the outcome, refused or not: the caller raises with
        :func:`~livesale.orders.state.raise_for` and publishes ``outcome.reaped``.
        :class:`Unavailable` while stock is being rebuilt from SQLite.
        """
        deadline = time.monotonic() + CLICK_SECONDS
        while time.monotonic() < deadline:
            outcome = await self._click(show_id, viewer_id, sku, qty, idem_key, client)
            if outcome is not None:
                return outcome
            # The same click, sent at once more than once: the one that claimed the key was
            # refused meanwhile and gave its claim back, so this one is a click of its own.
            # (Each round, one of them is answered: a storm of N ends within N rounds.)
        raise Unavailable("this click is being answered already; try again shortly")

    async def _click(
        self, show_id: str, viewer_id: str, sku: str, qty: int, idem_key: str, client: str
    ) -> state.Outcome | None:
        hold_id = new_hold_id(sku)
        rate = self.rate if client else (0, 0.0)
        if self.one_call:
            result = await self.batcher.call(
                calls.click(
                    hold_id=hold_id,
                    show_id=show_id,
                    viewer_id=viewer_id,
                    sku=sku,
                    qty=qty,
                    hold_ms=self.hold_ms,
                    idem_key=idem_key,
                    idem_seconds=self.idem_seconds,
                    reap_batch=state.REAP_BATCH,
                    index_ms=self.hold_ms + INDEX_SLACK_MS,
                    default_limit=self.default_limit,
                    client=client,
                    address_multiple=self.address_multiple,
                    live_holds=self.live_holds,
                    rate=rate,
                )
            )
            if _text(result[0]) == "admit":
                return await self._not_admitted(result[1:], show_id, viewer_id, sku, qty, idem_key)
            return self._taken(sku, result[1:])
        admitted = await self.batcher.call(
            calls.admit(
                hold_id=hold_id,
                show_id=show_id,
                viewer_id=viewer_id,
                sku=sku,
                qty=qty,
                hold_ms=self.hold_ms,
                idem_key=idem_key,
                idem_seconds=self.idem_seconds,
                client=client,
                address_multiple=self.address_multiple,
                live_holds=self.live_holds,
                rate=rate,
            )
        )
        if _text(admitted[0]) != "ok":
            return await self._not_admitted(admitted, show_id, viewer_id, sku, qty, idem_key)
        give_back = calls.unadmit(
            hold_id=hold_id,
            show_id=show_id,
            viewer_id=viewer_id,
            sku=sku,
            qty=qty,
            idem_key=idem_key,
            client=client,
        )
        try:
            await self._index(sku)
        except LivesaleError:
            # No stock was taken: the click's claim goes, and a retry starts afresh.
            with contextlib.suppress(LivesaleError):
                await self.batcher.call(give_back)
            raise
        # (Should this call fail on the wire, it may or may not have run: the claim stays,
        # and a retry of the click is answered with the hold if it was made.)
        result = await self.batcher.call(
            calls.reserve(
                hold_id=hold_id,
                show_id=show_id,
                viewer_id=viewer_id,
                sku=sku,
                qty=qty,
                expires_ms=int(admitted[4]),
                idem_key=idem_key,
                reap_batch=state.REAP_BATCH,
                default_limit=self.default_limit,
                client=client,
                address_multiple=self.address_multiple,
            )
        )
        if _text(result[0]) != "ok":
            await self.batcher.call(give_back)
        return self._taken(sku, result)

    async def _not_admitted(
        self,
        admitted: list[Any],
        show_id: str,
        viewer_id: str,
        sku: str,
        qty: int,
        idem_key: str,
    ) -> state.Outcome | None:
        """A click the show's rules (``admit``) did not let through to the stock: refused,
        rate-limited (raised), or a retry of an earlier click (``None``: see
        :meth:`_existing`)."""
        status = _text(admitted[0])
        if status == "rate_limited":
            raise limits.refusal("hold", int(admitted[2]))
        if status == "existing":
            record = keys.idempotency(show_id, viewer_id, idem_key)
            return await self._existing(_text(admitted[1]), record, f"{sku}|{qty}")
        return await self._refused_at_admit(status, show_id, sku, admitted)

    def _taken(self, sku: str, result: list[Any]) -> state.Outcome:
        """The outcome of a click's stock step (``reserve``), whose refusal gave back what
        the first step took."""
        status = _text(result[0])
        if status == "unready":
            self.unready(sku)
            raise Unavailable("stock is being rebuilt from the database; try again shortly")
        outcome = state.Outcome(
            status,
            state.Shelf(StockLevel(sku, 0, int(result[1]), 0, 0)),
            hold=to_hold(result[2]) if result[2] else None,
            reaped=tuple(to_hold(r) for r in result[5:]),
        )
        if status in ("limit", "address_limit"):
            return replace(outcome, limit=int(result[3]), current=int(result[4]))
        if status == "not_live":
            return replace(outcome, show_state=_text(result[3]))
        return outcome

    async def _refused_at_admit(
        self, status: str, show_id: str, sku: str, admitted: list[Any]
    ) -> state.Outcome:
        """The outcome of a click ``admit`` answered without letting it take stock."""
        level = _unread(sku)
        if status == "not_live" and not admitted[2] and self.selling is not None:
            if await self.selling(show_id):  # Redis lost the show's mirror: rebuilt with stock
                self.unready(sku)
                raise Unavailable("stock is being rebuilt from the database; try again shortly")
        outcome = state.Outcome(status, level)
        if status in ("hold_limit", "address_hold_limit"):
            return replace(outcome, limit=int(admitted[2]), current=int(admitted[3]))
        if status == "not_live":
            return replace(outcome, show_state=_text(admitted[2]))
        return outcome

    async def _existing(
        self, hold_id: str, record_key: str, fingerprint: str
    ) -> state.Outcome | None:
        """A click whose key an earlier click claimed for ``hold_id``: that hold as it is now.
        While the earlier click is between its two steps (the same click sent twice at once),
        this waits for its hold; ``None`` if it was refused meanwhile (its claim went), and
        ``gone`` for a hold that finished and was forgotten, or that the earlier click never
        made (its process died between the steps)."""
        sku = sku_of(hold_id)
        deadline = time.monotonic() + EXISTING_WAIT_SECONDS
        pause = 0.005
        while True:
            with map_redis_errors():
                raw = await self.redis.hget(keys.holds(sku), hold_id)
                if raw is not None:
                    return state.Outcome("existing", _unread(sku), hold=to_hold(raw))
                claim = await self.redis.get(record_key)
            if claim is None or _text(claim) != f"{hold_id}|{fingerprint}":
                return None
            if time.monotonic() > deadline:
                return state.Outcome("gone", _unread(sku))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def _index(self, sku: str) -> None:
        """Put ``sku`` in the sweepers' index before a hold of it is made, scored past the
        latest expiry a hold made now can have; written again only once that score is near."""
        now = time.time() * 1000
        if self._indexed.get(sku, 0) > now + self.hold_ms:
            return
        # One write at a time per SKU: a rush of clicks on a cold SKU waits for the first's.
        writing = self._indexing.get(sku)
        if writing is None:
            writing = self._indexing[sku] = asyncio.ensure_future(self._write_index(sku, now))
            writing.add_done_callback(lambda _: self._indexing.pop(sku, None))
        await asyncio.shield(writing)

    async def _write_index(self, sku: str, now: float) -> None:
        until = int(now + 2 * self.hold_ms + INDEX_SLACK_MS)
        with map_redis_errors():
            await self.redis.zadd(keys.HOLD_SKUS, {sku: until}, gt=True)
        self._indexed[sku] = until

    async def get(self, hold_id: str) -> state.Hold:
        """The hold, in whatever state; :class:`NotFound` if unknown or long finished."""
        sku = sku_of(hold_id)
        with map_redis_errors():
            raw = await self.redis.hget(keys.holds(sku), hold_id)
        if raw is None:
            raise NotFound("no such hold")
        return to_hold(raw)

    async def release(self, hold_id: str, viewer_id: str | None) -> state.Outcome:
        """Give a held hold back (``viewer_id=None``: the system does it)."""
        hold = await self.get(hold_id)
        result = await self.scripts.run(
            calls.release(sku=hold.sku, hold_id=hold_id, viewer_id=viewer_id)
        )
        outcome = self._outcome(hold.sku, result)
        if outcome.status == "ok":
            await self._left(hold)
        return outcome

    async def confirm(self, hold_id: str, order_id: str) -> state.Outcome:
        """Move a live hold's units from held to sold for ``order_id``; the hold leaves the
        live holds of its viewer and of the address it was made from.

        Status ``ok``, ``expired``, ``gone`` (finished and forgotten, or never made), ``taken``,
        or ``unready`` while stock is being rebuilt (the caller then retries later; nothing
        changed).
        """
        sku = sku_of(hold_id)
        result = await self.batcher.call(calls.confirm(sku=sku, hold_id=hold_id, order_id=order_id))
        outcome = self._outcome(sku, result)
        if outcome.status == "unready":
            self.unready(sku)
        elif outcome.hold is not None and outcome.status in ("ok", "expired"):
            await self._left(outcome.hold)
        return outcome

    async def _left(self, hold: state.Hold) -> None:
        """A hold is no longer live: it leaves its viewer's and address's live holds (in the
        show's slot; a hold left there by a crash falls out at its expiry all the same)."""
        with map_redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.live_holds(hold.show_id, hold.viewer_id), hold.hold_id)
                pipe.zrem(keys.address_live_holds(hold.show_id, hold.addr), hold.hold_id)
                await pipe.execute()

    def _outcome(self, sku: str, result: list[Any]) -> state.Outcome:
        return state.Outcome(
            _text(result[0]),
            state.Shelf(StockLevel(sku, 0, int(result[1]), 0, 0)),
            hold=to_hold(result[2]) if result[2] else None,
        )

    async def live(
        self, show_id: str, skus: Sequence[str], viewer_id: str | None = None
    ) -> list[state.Hold]:
        """The show's holds still held on ``skus`` (only ``viewer_id``'s when given).

        Reads each SKU's expiry set, which holds live holds only, so finished holds kept for
        retries cost nothing here.
        """
        with map_redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for sku in skus:
                    pipe.zrange(keys.hold_expiry(sku), 0, -1)
                ids = await pipe.execute()
                wanted = [(sku, members) for sku, members in zip(skus, ids, strict=True) if members]
                for sku, members in wanted:
                    pipe.hmget(keys.holds(sku), members)
                records = await pipe.execute() if wanted else []
        holds = [to_hold(raw) for batch in records for raw in batch if raw is not None]
        return [
            h
            for h in holds
            if h.show_id == show_id
            and h.state is state.HoldState.HELD
            and (viewer_id is None or h.viewer_id == viewer_id)
        ]

    async def skus_with_holds(self) -> list[tuple[str, int]]:
        """The sweepers' index: every SKU that may have holds, with its score."""
        with map_redis_errors():
            members: list[Any] = await self.redis.zrange(keys.HOLD_SKUS, 0, -1, withscores=True)
        return sorted((_text(member), int(score)) for member, score in members)

    async def sweep(self, sku: str, score: int | None = None) -> tuple[int, list[state.Hold]]:
        """Expire the SKU's holds whose time is up; ``(available, expired holds)``. A SKU left
        with no hold at all leaves the index, unless a click wrote it there again since its
        ``score`` was read, or a hold made before that score may still come."""
        result = await self.scripts.run(
            calls.expire(sku=sku, batch=SWEEP_BATCH, keep_finished_ms=self.keep_finished_ms)
        )
        if int(result[1]) and score is not None and score < time.time() * 1000:
            await self.scripts.run(calls.unindex(sku=sku, score=score))
        return int(result[0]), [to_hold(r) for r in result[2:]]

    async def release_show(self, show_id: str, sku: str) -> tuple[int, list[state.Hold]]:
        """Release every hold of ``show_id`` on ``sku`` that is still held."""
        result = await self.scripts.run(calls.release_show(sku=sku, show_id=show_id))
        return int(result[0]), [to_hold(r) for r in result[1:]]


def _unread(sku: str) -> state.Shelf:
    """The shelf of an answer made without reading the SKU's stock (the show's rules refused
    the click, or it is a retry): only a sold-out answer, from the stock step, says what is
    left."""
    return state.Shelf(StockLevel(sku, 0, 0, 0, 0))


def hold_event(hold: state.Hold) -> dict[str, Any]:
    """The buyer-only room event for a hold that was made, released or expired."""
    return {
        "type": "hold",
        "viewer_id": hold.viewer_id,
        "hold": msgspec.to_builtins(hold_out(hold)),
    }


async def announce_ended(redis: aioredis.Redis, holds: list[state.Hold], available: int) -> None:
    """Publish the stock and per-buyer hold events for holds that ended outside a script
    that publishes them itself (sweeps, reaping, the end of a show)."""
    shows: set[str] = set()
    for hold in holds:
        shows.add(hold.show_id)
        await events.publish(redis, hold.show_id, hold_event(hold))
    if holds:
        sku = holds[0].sku
        for show_id in sorted(shows):
            await events.publish(
                redis, show_id, {"type": "stock", "sku": sku, "available": available}
            )
