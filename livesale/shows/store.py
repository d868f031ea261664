"""Shows and line-ups: SQLite is the record, Redis holds the mirror the buy scripts read."""

from __future__ import annotations

import hmac
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from livesale import events, keys
from livesale.catalogue import Catalogue
from livesale.db import Database, Row
from livesale.errors import (
    Forbidden,
    InvalidTransition,
    NotFound,
    Unauthorized,
    ValidationFailed,
    map_redis_errors,
)
from livesale.ids import ShowId, hash_secret, new_id, new_secret
from livesale.lua import Scripts, calls
from livesale.money import Money
from livesale.shows.messages import (
    Featured,
    Lineup,
    LineupItem,
    LineupItemIn,
    Show,
    ShowCreated,
    ShowIn,
    ShowPatch,
)
from livesale.shows.state import ShowState, presence_total, transition
from livesale.values import StockLevel

#: Called with the show id once a show has ended (e.g. the orders' closing starts its grace).
EndHook = Callable[[str], Awaitable[None]]
#: Called with (show id, SKU or ``None``) each time this process features an item.
FeatureHook = Callable[[str, str | None], None]


def name_key(name: str) -> str:
    """What two names that read alike share: NFKC letters and digits, case-folded."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


class ShowStore:
    """Creates shows, moves them through their states and keeps their line-ups."""

    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        scripts: Scripts,
        catalogue: Catalogue,
        base_url: str,
        grace_seconds: int = 0,
        *,
        replay_days: int = 30,
    ) -> None:
        self.db = db
        self.redis = redis
        self.scripts = scripts
        self.catalogue = catalogue
        self.base_url = base_url
        self.grace_seconds = grace_seconds
        #: How long after the end a replay sells (the recordings' keep time; 0: until the
        #: merchant stops it).
        self.replay_seconds = replay_days * 86400
        self._end_hooks: list[EndHook] = []
        self._replay_end_hooks: list[EndHook] = []
        self._feature_hooks: list[FeatureHook] = []

    def on_feature(self, hook: FeatureHook) -> None:
        """Call ``hook(show_id, sku)`` whenever this process features an item (or nothing):
        the recording marks its chapters with it."""
        self._feature_hooks.append(hook)

    def on_end(self, hook: EndHook) -> None:
        """Call ``hook(show_id)`` whenever a show is ended (the domains that follow shows, like
        orders, register here instead of being called by name)."""
        self._end_hooks.append(hook)

    def on_replay_end(self, hook: EndHook) -> None:
        """Call ``hook(show_id)`` when an ended show's replay stops selling (the merchant
        turned it off, or its time is over): the orders release its holds."""
        self._replay_end_hooks.append(hook)

    async def ended(self, show_id: str) -> None:
        """Run every end hook for ``show_id`` (asking again is harmless: hooks are idempotent)."""
        for hook in self._end_hooks:
            await hook(show_id)

    def watch_url(self, show_id: str) -> str:
        return f"{self.base_url}/watch/{show_id}"

    def studio_url(self, show_id: str, host_token: str) -> str:
        # The token rides in the fragment: browsers never send it to a server or a Referer.
        return f"{self.base_url}/studio/{show_id}#token={host_token}"

    def _replay_open(self, row: Row) -> bool:
        """Whether the show sells on its replay: the merchant's setting, and, once ended, the
        replay's time not over."""
        if not row["replay_sales"]:
            return False
        if row["ended_at"] is None or not self.replay_seconds:
            return True
        return bool(time.time() < row["ended_at"] + self.replay_seconds)

    def _show(self, row: Row, paused: bool = False) -> Show:
        replay = self._replay_open(row)
        return Show(
            id=row["id"],
            title=row["title"],
            host_name=row["host_name"],
            state=row["state"],
            paused=paused,
            scheduled_at=row["scheduled_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            watch_url=self.watch_url(row["id"]),
            sales_close_at=(
                row["ended_at"] + self.grace_seconds
                if row["ended_at"] is not None and not replay
                else None
            ),
            replay_sales=replay,
        )

    async def create(self, data: ShowIn, *, demo: bool = False) -> ShowCreated:
        show_id = ShowId(new_id("sh"))
        token = new_secret("host")
        scheduled = data.scheduled_at.isoformat() if data.scheduled_at else None
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO shows (id, title, host_name, state, host_token_hash, scheduled_at,"
                " created_at, demo, replay_sales) VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?, ?)",
                (
                    show_id,
                    data.title,
                    data.host_name,
                    hash_secret(token),
                    scheduled,
                    time.time(),
                    int(demo),
                    int(data.replay_sales),
                ),
            )
        await self.mirror(show_id)
        return ShowCreated(
            id=show_id,
            title=data.title,
            host_name=data.host_name,
            state="scheduled",
            host_token=token,
            studio_url=self.studio_url(show_id, token),
            watch_url=self.watch_url(show_id),
            scheduled_at=scheduled,
            replay_sales=data.replay_sales,
        )

    async def _row(self, show_id: str) -> Row:
        row = await self.db.fetchone("SELECT * FROM shows WHERE id = ?", (show_id,))
        if row is None:
            raise NotFound(f"no show {show_id!r}")
        return row

    async def _paused(self, show_ids: Sequence[str]) -> list[bool]:
        with map_redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for show_id in show_ids:
                    pipe.hget(keys.show(show_id), "paused")
                values = await pipe.execute()
        return [v == b"1" for v in values]

    async def get(self, show_id: str) -> Show:
        row = await self._row(show_id)
        (paused,) = await self._paused([show_id])
        return self._show(row, paused)

    async def all(self) -> list[Show]:
        """Live shows first, then scheduled, then ended; newest first within each."""
        rows = await self.db.fetchall(
            "SELECT * FROM shows ORDER BY CASE state WHEN 'live' THEN 0"
            " WHEN 'scheduled' THEN 1 ELSE 2 END, created_at DESC"
        )
        paused = await self._paused([r["id"] for r in rows])
        return [self._show(r, p) for r, p in zip(rows, paused, strict=True)]

    async def covers(self, show_ids: Sequence[str]) -> list[str]:
        """Each show's cover image URL: the featured item's image, else the first line-up item's
        that has one; ``""`` when no item of the show has an image."""
        if not show_ids:
            return []
        marks = ", ".join("?" * len(show_ids))
        rows = await self.db.fetchall(
            "SELECT l.show_id, l.sku, p.image_url FROM lineup_items l"
            f" JOIN products p ON p.sku = l.sku WHERE l.show_id IN ({marks}) AND p.image_url != ''"
            " ORDER BY l.show_id, l.position",
            tuple(show_ids),
        )
        images: dict[str, dict[str, str]] = {}
        for row in rows:
            images.setdefault(row["show_id"], {})[row["sku"]] = row["image_url"]
        with map_redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for show_id in show_ids:
                    pipe.hget(keys.show(show_id), "featured")
                featured = await pipe.execute()
        covers = []
        for show_id, sku in zip(show_ids, featured, strict=True):
            of_show = images.get(show_id, {})
            chosen = of_show.get(sku.decode()) if isinstance(sku, bytes) else None
            covers.append(chosen or next(iter(of_show.values()), ""))
        return covers

    async def viewers(self, show_ids: Sequence[str]) -> list[int]:
        """How many viewers each show's room counts now: the presence every process of the room
        reports to Redis, read only (the room's own read also forgets stale reports)."""
        if not show_ids:
            return []
        with map_redis_errors():
            # The reports expire by Redis's clock (presence.lua), so they are read by it (asked
            # on its own: a cluster pipeline refuses TIME).
            seconds, micros = await self.redis.time()
            async with self.redis.pipeline(transaction=False) as pipe:
                for show_id in show_ids:
                    pipe.hgetall(keys.show_presence(show_id))
                reports = await pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return [presence_total(report, now_ms) for report in reports]

    async def is_host_name(self, nickname: str) -> bool:
        """True when ``nickname`` reads as the host name of a show not yet ended (the same
        letters, whatever the case, accents' forms, spacing or punctuation)."""
        rows = await self.db.fetchall("SELECT DISTINCT host_name FROM shows WHERE state != 'ended'")
        wanted = name_key(nickname)
        return bool(wanted) and any(name_key(r["host_name"]) == wanted for r in rows)

    async def verify_host(self, show_id: str, token: str | None) -> None:
        """Return if ``token`` is the show's host token; 401 when absent, 403 when wrong."""
        row = await self._row(show_id)
        if not token:
            raise Unauthorized("this needs the show's host token")
        if not hmac.compare_digest(row["host_token_hash"], hash_secret(token)):
            raise Forbidden("wrong host token for this show")

    async def rotate_host_token(self, show_id: str) -> str:
        """Issue a new host token and return it. The old one stops working at once, and the
        host sockets it opened close (4403) in every process."""
        await self._row(show_id)
        token = new_secret("host")
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE shows SET host_token_hash = ? WHERE id = ?", (hash_secret(token), show_id)
            )
        kick = {"type": "kick", "host": True, "code": 4403, "reason": "the host token was replaced"}
        await events.publish(self.redis, show_id, kick)
        return token

    async def stock_changed(self, skus: Sequence[str]) -> None:
        """The merchant changed the stock of ``skus``: every show not ended that sells them
        tells its room the units available now, as a sale does."""
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return
        rows: list[Row] = []
        for at in range(0, len(wanted), 500):  # SQLite's bound on parameters
            part = wanted[at : at + 500]
            rows += await self.db.fetchall(
                "SELECT l.show_id, l.sku FROM lineup_items l JOIN shows s ON s.id = l.show_id"
                f" WHERE s.state != 'ended' AND l.sku IN ({', '.join('?' * len(part))})",
                part,
            )
        if not rows:
            return
        levels = await self.catalogue.stock_levels(sorted({r["sku"] for r in rows}))
        for r in rows:
            event = {"type": "stock", "sku": r["sku"], "available": levels[r["sku"]].available}
            await events.publish(self.redis, r["show_id"], event)

    async def check_host_lineup(self, show_id: str, items: Sequence[LineupItemIn]) -> None:
        """A host may reorder the line-up, never change what is on it, its prices or its
        limits (those are the merchant's): :class:`Forbidden` otherwise."""
        current = sorted(
            (r["sku"], r["price_amount"], r["limit_per_buyer"])
            for r in await self.db.fetchall(
                "SELECT sku, price_amount, limit_per_buyer FROM lineup_items WHERE show_id = ?",
                (show_id,),
            )
        )
        wanted = sorted(
            (i.sku, i.price.amount if i.price else None, i.limit_per_buyer) for i in items
        )
        if wanted != current:
            raise Forbidden(
                "a host may only reorder the line-up; its items, prices and limits are the"
                " merchant's"
            )

    async def move(self, show_id: str, target: ShowState) -> Show:
        """Start or end a show. Asking for the state it is already in changes nothing."""
        column = "started_at" if target is ShowState.LIVE else "ended_at"
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT state FROM shows WHERE id = ?", (show_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no show {show_id!r}")
            current = ShowState(row[0])
            if current is not target:
                transition(current, target)
                await conn.execute(
                    f"UPDATE shows SET state = ?, {column} = ? WHERE id = ?",
                    (target.value, time.time(), show_id),
                )
        await self.mirror(show_id)
        return await self.get(show_id)

    async def patch(self, show_id: str, data: ShowPatch) -> Show:
        """Change the merchant's settings of a show (see :class:`ShowPatch`)."""
        row = await self._row(show_id)
        if data.replay_sales is None or bool(row["replay_sales"]) == data.replay_sales:
            return await self.get(show_id)
        if data.replay_sales:
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    "UPDATE shows SET replay_sales = 1 WHERE id = ? AND state != 'ended'",
                    (show_id,),
                )
                if not cur.rowcount:
                    raise InvalidTransition(
                        "the show has ended without replay sales; they cannot reopen",
                        state="ended",
                    )
            await self.mirror(show_id)
        else:
            await self._stop_replay(show_id)
        return await self.get(show_id)

    async def _stop_replay(self, show_id: str) -> None:
        """The show stops selling on its replay: new holds are refused at once, and after
        the end, every hold still live is released by the replay-end hooks."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE shows SET replay_sales = 0 WHERE id = ?", (show_id,))
            cur = await conn.execute("SELECT state FROM shows WHERE id = ?", (show_id,))
            row = await cur.fetchone()
        await self.mirror(show_id)
        if row is not None and row[0] == ShowState.ENDED.value:
            for hook in self._replay_end_hooks:
                await hook(show_id)

    async def close_lapsed_replays(self) -> list[str]:
        """Stop the replay sales of every show whose replay time is over; returns them."""
        if not self.replay_seconds:
            return []
        rows = await self.db.fetchall(
            "SELECT id FROM shows WHERE state = 'ended' AND replay_sales = 1 AND ended_at < ?",
            (time.time() - self.replay_seconds,),
        )
        for row in rows:
            await self._stop_replay(row["id"])
        return [r["id"] for r in rows]

    async def put_lineup(self, show_id: str, items: Sequence[LineupItemIn]) -> Lineup:
        """Replace the line-up (in show order). Refuses unknown or repeated SKUs, a price in
        another currency than the product's, and any change to an ended show."""
        row = await self._row(show_id)
        if row["state"] == ShowState.ENDED.value:
            raise InvalidTransition("the show has ended; its line-up is final", state="ended")
        problems: list[str] = []
        seen: set[str] = set()
        products = await self.catalogue.products_by_sku(i.sku for i in items)
        for index, item in enumerate(items):
            if item.sku in seen:
                problems.append(f"item {index}: SKU {item.sku!r} is already in the line-up")
            seen.add(item.sku)
            product = products.get(item.sku)
            if product is None:
                problems.append(f"item {index}: unknown SKU {item.sku!r}")
            elif item.price is not None and item.price.currency != product.price.currency:
                problems.append(
                    f"item {index}: price in {item.price.currency} but {item.sku!r} is sold in "
                    f"{product.price.currency}"
                )
        if problems:
            raise ValidationFailed("; ".join(problems), errors=problems)
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM lineup_items WHERE show_id = ?", (show_id,))
            await conn.executemany(
                "INSERT INTO lineup_items (show_id, position, sku, price_amount, limit_per_buyer)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (show_id, pos, i.sku, i.price.amount if i.price else None, i.limit_per_buyer)
                    for pos, i in enumerate(items)
                ],
            )
        await self.mirror(show_id)
        lineup = await self.lineup(show_id)
        if lineup.featured is not None and all(i.sku != lineup.featured for i in items):
            # The featured item left the line-up: nothing is featured any more, for everyone.
            code = await self.feature(show_id, None)
            if code != "ok":
                raise InvalidTransition(f"cannot unfeature: {code}")
            lineup = Lineup(show_id=lineup.show_id, featured=None, items=lineup.items)
        return lineup

    async def feature(self, show_id: str, sku: str | None) -> str:
        """Feature ``sku`` ("now explaining"; ``None`` features nothing): the room gets
        ``featured``, and ``requests`` when this resolved the item's request. Answers ``ok``, or
        why not: ``show_ended``, ``not_in_lineup``."""
        body = events.encoder.encode(Featured(sku=sku))
        result = await self.scripts.run(calls.feature(show_id=show_id, sku=sku, body=body))
        answer = result.decode() if isinstance(result, bytes) else str(result)
        if answer == "ok":
            for hook in self._feature_hooks:
                hook(show_id, sku)
        return answer

    async def _lineup_rows(self, show_id: str) -> list[Row]:
        return await self.db.fetchall(
            "SELECT l.sku, l.price_amount, l.limit_per_buyer, p.title, p.description,"
            " p.image_url, p.price_amount AS list_amount, p.currency"
            " FROM lineup_items l JOIN products p ON p.sku = l.sku"
            " WHERE l.show_id = ? ORDER BY l.position",
            (show_id,),
        )

    async def lineup_skus(self, show_id: str) -> list[str]:
        """The line-up's SKUs in show order (no stock, no Redis): 404 for an unknown show."""
        await self._row(show_id)
        rows = await self.db.fetchall(
            "SELECT sku FROM lineup_items WHERE show_id = ? ORDER BY position", (show_id,)
        )
        return [r["sku"] for r in rows]

    async def lineup(self, show_id: str) -> Lineup:
        """The line-up in show order, with live stock and the featured item."""
        await self._row(show_id)
        rows = await self._lineup_rows(show_id)
        levels = await self.catalogue.stock_levels([r["sku"] for r in rows])
        with map_redis_errors():
            featured_raw = await self.redis.hget(keys.show(show_id), "featured")
        featured = featured_raw.decode() if isinstance(featured_raw, bytes) else featured_raw
        return Lineup(
            show_id=show_id,
            featured=featured,
            items=[_item(r, levels[r["sku"]], featured) for r in rows],
        )

    async def mirror(self, show_id: str) -> None:
        """Copy the show's state and line-up from SQLite to Redis (for the buy scripts): in
        the show's slot, and each item's offer in its SKU's slot while the show sells it
        (``live``, or ``replay`` while an ended show's replay does). The show's mirror changes
        first and at once; the items follow one by one, so a click another process let
        through a moment before the show stopped selling takes nothing."""
        row = await self._row(show_id)
        rows = await self._lineup_rows(show_id)
        mapping = {
            r["sku"]: f"{_price(r).amount}|{r['currency']}|{r['limit_per_buyer'] or 0}"
            for r in rows
        }
        mode = (
            "live"
            if row["state"] == "live"
            else "replay"
            if row["state"] == "ended" and self._replay_open(row)
            else ""
        )
        # When a replay's sales end; an offer past it sells nothing and is dropped by the
        # next mirror of a show selling the SKU.
        ends = (
            int((row["ended_at"] + self.replay_seconds) * 1000)
            if mode == "replay" and self.replay_seconds
            else 0
        )
        before = await self.scripts.run(
            calls.mirror(
                show_id=show_id,
                state=row["state"],
                replay=self._replay_open(row),
                offers=mapping,
            )
        )
        with map_redis_errors():
            gone = {s.decode() if isinstance(s, bytes) else s for s in before} - set(mapping)
            async with self.redis.pipeline(transaction=False) as pipe:
                for sku in mapping:
                    pipe.hgetall(keys.offers(sku))
                held = await pipe.execute()
            now_ms = time.time() * 1000
            async with self.redis.pipeline(transaction=False) as pipe:
                for (sku, offer), others in zip(mapping.items(), held, strict=True):
                    if mode:
                        pipe.hset(keys.offers(sku), show_id, f"{offer}|{mode}|{ends}")
                    else:
                        pipe.hdel(keys.offers(sku), show_id)
                    over = [show for show, value in others.items() if _over(value, now_ms)]
                    if over:
                        pipe.hdel(keys.offers(sku), *over)
                for sku in sorted(gone):
                    pipe.hdel(keys.offers(sku), show_id)
                await pipe.execute()

    async def mirror_all(self) -> int:
        """Mirror every show that still sells, live or on its replay (after Redis lost its
        data); return how many."""
        rows = await self.db.fetchall(
            "SELECT id FROM shows WHERE state != 'ended' OR replay_sales = 1"
        )
        for r in rows:
            await self.mirror(r["id"])
        return len(rows)


def _over(offer: bytes, now_ms: float) -> bool:
    """Whether an offer of ``keys.offers`` is past the end of its replay's sales."""
    ends = int(offer.rsplit(b"|", 1)[-1] or 0)
    return 0 < ends <= now_ms


def _price(row: Row) -> Money:
    amount = row["price_amount"] if row["price_amount"] is not None else row["list_amount"]
    return Money(amount=amount, currency=row["currency"])


def _item(row: Row, level: StockLevel, featured: str | None) -> LineupItem:
    return LineupItem(
        sku=row["sku"],
        title=row["title"],
        description=row["description"],
        image_url=row["image_url"],
        price=_price(row),
        list_price=Money(amount=row["list_amount"], currency=row["currency"]),
        limit_per_buyer=row["limit_per_buyer"],
        available=level.available,
        featured=row["sku"] == featured,
        on_hand=level.on_hand,
    )
