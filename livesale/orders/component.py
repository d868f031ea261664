"""The orders component: every background duty of the sale, owned and stopped in one place.

* the hold sweeper (expired holds back to ``available`` within about a second);
* the stock watch: notices on its own when Redis lost its data (the readiness marker is gone),
  and rebuilds stock from SQLite before anything is sold again;
* order recovery: at start-up every order whose money may still move is reconciled with its
  payment provider's own state (and unfinished refunds and returns are completed); orders that
  stall later are picked up;
* show closings whose grace period is over;
* webhook deliveries with retries;
* the Redis memory watch (:mod:`livesale.memory`): a full Redis refuses every buy click, so
  its use is exported as metrics and warned about before it is full.

Registered in ``livesale.app.STARTERS`` under :data:`ORDERS`; routes reach it with :func:`of`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import httpx
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from livesale import background, keys, limits, memory
from livesale import services as svc
from livesale.catalogue import CATALOGUE
from livesale.errors import LivesaleError
from livesale.lease import Lease
from livesale.memory import RedisMemory
from livesale.orders.book import OrderBook
from livesale.orders.checkout import Sales
from livesale.orders.fulfilment import Closing, show_ended
from livesale.orders.holds import HoldStore, announce_ended, hold_out
from livesale.orders.messages import HoldOut
from livesale.orders.payments import ManualProvider, Provider, TestProvider
from livesale.orders.recovery import ensure_stock, reconcile
from livesale.orders.returns import Returns
from livesale.orders.webhooks import Webhooks
from livesale.shows import SHOWS

log = logging.getLogger("livesale.orders")

SWEEP_SECONDS = 0.25
WATCH_SECONDS = 0.5
CLOSING_SECONDS = 0.5
WEBHOOK_SECONDS = 0.5
RECOVERY_SECONDS = 5.0
#: An order still in flight after this long has lost its request (crash, timeout): recover it.
STALLED_SECONDS = 30.0


def providers(services: svc.Services) -> dict[str, Provider]:
    """The payment providers this server accepts, by name, in the merchant's order."""
    made: dict[str, Provider] = {}
    for name in services.settings.providers:
        if name == "test":
            made[name] = TestProvider(services.db)
        elif name == "manual":
            made[name] = ManualProvider()
        elif name == "stripe":
            # Imported only when enabled: the stripe package takes ~0.4 s to import.
            from livesale.orders._stripe import StripeProvider

            made[name] = StripeProvider(services.settings)
    return made


class OrdersComponent:
    """Owns the sale's parts and background tasks; :meth:`aclose` cancels and awaits them."""

    def __init__(self, services: svc.Services) -> None:
        self.services = services
        self.providers = providers(services)
        settings = services.settings
        self.holds = HoldStore(
            services.redis,
            services.scripts,
            settings.hold_seconds,
            keep_finished_seconds=settings.keep_finished_seconds,
            default_limit=settings.default_limit_per_buyer,
            address_multiple=settings.address_cap_multiple,
            live_holds=settings.live_holds_per_viewer,
            rate=limits.bucket(settings, "hold"),
        )
        self.holds.on_unready = self.sku_lost
        self.holds.selling = self._selling
        self.book = OrderBook(services.db, services.redis)
        self.returns = Returns(self.book, services.scripts, self.providers)
        self.sales = Sales(self.book, self.holds, self.providers, self.returns)
        self.closing = Closing(
            services.db,
            services.redis,
            self.holds,
            self.sales,
            self.providers,
            self.book,
            keep_seconds=settings.show_keep_seconds,
            replay_days=settings.keep_recordings,
            batch_seconds=settings.replay_batch_hours * 3600,
        )
        self.webhooks = Webhooks(
            services.db,
            insecure=settings.allow_insecure_webhooks,
            private=settings.allow_private_webhooks,
        )
        self.memory = RedisMemory(services.redis, services.metrics)
        self._tasks: list[asyncio.Task[None]] = []
        self._rebuilding: asyncio.Task[object] | None = None
        self._forgetting: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(follow_redirects=False)
        self.lease = Lease(services.redis)

    async def start(self) -> None:
        self.services.get(SHOWS).on_end(self.show_ended)
        self.services.get(SHOWS).on_replay_end(self.closing.replay_ended)
        await self.sales.reconcile()
        await self.lease.start()
        # Every process sweeps and watches (each is one atomic script, harmless twice); only
        # the lease's holder closes shows, delivers webhooks and recovers orders.
        self._tasks = [
            asyncio.create_task(self._every(SWEEP_SECONDS, self.sweep), name="orders-sweeper"),
            asyncio.create_task(self._every(WATCH_SECONDS, self.watch), name="orders-watch"),
            asyncio.create_task(
                self._every(CLOSING_SECONDS, self.close_due, shared=True), name="closings"
            ),
            asyncio.create_task(
                self._every(WEBHOOK_SECONDS, self.deliver, shared=True), name="webhooks"
            ),
            asyncio.create_task(
                self._every(RECOVERY_SECONDS, self.recover, shared=True), name="recovery"
            ),
            asyncio.create_task(
                self._every(memory.CHECK_SECONDS, self.memory.check), name="memory"
            ),
        ]

    async def aclose(self) -> None:
        rebuilding = [self._rebuilding] if self._rebuilding is not None else []
        await background.stop([*self._tasks, *rebuilding])
        await self.lease.aclose()
        await self.holds.batcher.aclose()
        await self._http.aclose()
        for provider in self.providers.values():
            closing = getattr(provider, "aclose", None)
            if closing is not None:
                await closing()

    async def _every(
        self, seconds: float, duty: Callable[[], Awaitable[object]], *, shared: bool = False
    ) -> None:
        """Run ``duty`` every ``seconds``; a ``shared`` one only while this process holds the
        lease of the duties (one process of all that share the Redis)."""
        while True:
            try:
                if not shared or self.lease.held:
                    await duty()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying", getattr(duty, "__name__", duty))
            background.check_cancelled()
            await asyncio.sleep(seconds)

    async def show_ended(self, show_id: str) -> None:
        """A show ended: start its closing (once); the grace period runs from now."""
        await show_ended(self.services.db, show_id, self.services.settings.grace_seconds)

    async def live_holds_of(
        self, show_id: str, skus: Sequence[str], viewer_id: str
    ) -> list[HoldOut]:
        """The viewer's live holds in ``show_id`` on ``skus``, as the hold API shows them."""
        return [hold_out(h) for h in await self.holds.live(show_id, skus, viewer_id)]

    async def sweep(self) -> int:
        """Expire every hold whose time is up, in every SKU that has holds."""
        expired = 0
        for sku, score in await self.holds.skus_with_holds():
            available, holds = await self.holds.sweep(sku, score)
            await announce_ended(self.services.redis, holds, available)
            expired += len(holds)
        return expired

    async def watch(self) -> None:
        """Rebuild stock from SQLite if Redis lost it (the readiness marker is gone), or if a
        change of on-hand was cut off between its two steps (its process died)."""
        if not await self.services.redis.exists(keys.STOCK_READY):
            self.stock_lost()
        elif await self.services.get(CATALOGUE).stock_change_interrupted():
            self.stock_lost(interrupted=True)

    async def _selling(self, show_id: str) -> bool:
        try:
            show = await self.services.get(SHOWS).get(show_id)
        except LivesaleError:
            return False
        return show.state == "live" or (show.state == "ended" and show.replay_sales)

    def sku_lost(self, sku: str) -> None:
        """A script found ``sku``'s counters without their ready mark while the shop's marker
        may still be there (a cluster node that lost its data keeps the others'): the marker
        goes too, and stock is rebuilt."""
        busy = (self._rebuilding, self._forgetting)
        if any(task is not None and not task.done() for task in busy):
            return  # every click of a rush during the rebuild lands here: one is enough
        self._forgetting = asyncio.create_task(self._forget_ready(sku))

    async def _forget_ready(self, sku: str) -> None:
        try:
            if await self.services.redis.delete(keys.STOCK_READY):
                log.warning(
                    "stock of %s is missing in Redis: rebuilding all from the database", sku
                )
        except RedisError as exc:
            log.warning("cannot mark stock for a rebuild: %s", exc)
            return
        self.stock_lost()

    def stock_lost(self, *, interrupted: bool = False) -> None:
        """Start a rebuild now unless one is already running (called from the buy path)."""
        if self._rebuilding is None or self._rebuilding.done():
            if interrupted:
                log.warning("a stock change was interrupted: rebuilding stock from the database")
                work: Coroutine[Any, Any, object] = reconcile(self.services)
            else:
                log.warning("stock is missing in Redis: rebuilding it from the database")
                work = ensure_stock(self.services)
            self._rebuilding = asyncio.create_task(work)

    async def close_due(self) -> None:
        await self.services.get(SHOWS).close_lapsed_replays()
        await self.closing.finish_due()

    async def deliver(self) -> None:
        await self.webhooks.deliver_due(self._http)

    async def recover(self) -> None:
        await self.sales.recover(before=time.time() - STALLED_SECONDS)

    async def stripe_event(self, event: dict[str, Any]) -> str:
        """Apply one verified Stripe event, once: the order it names is brought in line with
        its PaymentIntent. Returns the order id, or "" for an event about no order of ours."""
        from livesale.orders._stripe import event_payment  # enabled: imported already

        ref = event_payment(event)
        event_id = str(event.get("id") or "")
        if not ref or not event_id:
            return ""
        db = self.services.db
        if await db.fetchone("SELECT 1 FROM stripe_events WHERE id = ?", (event_id,)):
            return ""  # delivered before: applied once already
        row = await db.fetchone("SELECT id FROM orders WHERE payment_ref = ?", (ref,))
        if row is None:
            log.info("stripe event %s is about %s, no order of this shop", event_id, ref)
            return ""
        await self.sales.sync(row["id"])
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO stripe_events (id, type, order_id, received_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (event_id, str(event.get("type")), row["id"], time.time()),
            )
        return str(row["id"])


#: The orders component's part of :class:`~livesale.services.Services`.
ORDERS: svc.Part[OrdersComponent] = svc.Part("orders")


async def start(services: svc.Services) -> OrdersComponent:
    """Build the orders component, recover orders left by a crash and start its duties."""
    component = OrdersComponent(services)
    services.provide(ORDERS, component)
    await component.start()
    return component


def of(conn: HTTPConnection) -> OrdersComponent:
    """The orders component of the app serving ``conn``."""
    return svc.of(conn).get(ORDERS)
