"""The app factory: ``create_app(settings) -> Starlette`` wires every domain together.

This is the one module (with the CLI, the server and the demo) that sees every domain: it puts
each domain's part into the shared :class:`~livesale.services.Services` (:func:`assemble`),
mounts their routes and starts their background components in order.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from livesale import api_keys, catalogue, http, media, openapi, orders, pages, room, shows
from livesale import services as svc
from livesale.config import Settings
from livesale.errors import Forbidden, LivesaleError, Unauthorized, Unavailable
from livesale.metrics import Metrics, MetricsMiddleware, merge_workers
from livesale.workers import WORKER_HEADER

log = logging.getLogger("livesale")

Starter = Callable[[svc.Services], Awaitable[svc.Component]]

#: Components with background work, started in this order and closed in reverse.
#: Each is ``async def start(services) -> Component``.
STARTERS: list[Starter] = [room.start, media.start, orders.start]


class App(Starlette):
    """Starlette, with one short path: a room WebSocket goes from the browser edge's checks
    (:class:`livesale.pages.BrowserEdge`) straight to its endpoint.

    A viewer's socket lives as long as the show, and each ASGI layer it passes through stays on
    its stack for as long, a coroutine frame or two each: a few KiB per idle viewer over the
    whole stack. None of the other layers acts on a WebSocket (metrics, CORS and the body limit
    are HTTP's; Starlette's error layers re-raise, and the room's endpoint answers its own
    refusals), so the short path changes nothing but that cost. Any other WebSocket path goes
    the long way, to the router's refusal.
    """

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._room_route = room.socket_route
        self._room: ASGIApp = pages.BrowserEdge(room.socket_route.app, settings=settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            match, child = self._room_route.matches(scope)
            if match is Match.FULL:
                scope["app"] = self
                scope.update(child)
                await self._room(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def assemble(services: svc.Services) -> None:
    """Put the domains' stores into ``services`` (no background work; idempotent)."""
    if services.find(catalogue.CATALOGUE) is None:
        services.provide(catalogue.CATALOGUE, catalogue.Catalogue(services))
    if services.find(shows.SHOWS) is None:
        services.provide(shows.SHOWS, shows.build(services))


@http.endpoint("Health: ok once Redis and SQLite both answer", errors=(503,))
async def healthz(request: Request) -> Response:
    """Health: ok once Redis and SQLite both answer."""
    services = svc.of(request)
    try:
        await services.redis.ping()
        await services.db.ping()
    except Exception as exc:
        raise Unavailable(f"not ready: {exc}") from exc
    return http.json_response({"status": "ok"})


@http.endpoint("Prometheus metrics in the text exposition format", response_media_type="text/plain")
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    services = svc.of(request)
    wanted = services.settings.metrics_token
    if wanted:
        # --metrics-token: request counts per route are the shop's business volume.
        given = http.bearer_token(request)
        if given is None:
            raise Unauthorized("/metrics needs Authorization: Bearer <the metrics token>")
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise Forbidden("wrong metrics token")
    settings = services.settings
    if settings.workers == 1 or _from_worker(request, settings):
        return services.metrics.render(request)
    # serve --workers: a scrape lands on any worker, which answers for all of them.
    own = services.metrics.render(request).body
    texts = {settings.worker: bytes(own).decode()}
    headers = {WORKER_HEADER: settings.worker_secret}
    if "authorization" in request.headers:
        headers["authorization"] = request.headers["authorization"]
    for worker in range(settings.workers):
        if worker == settings.worker:
            continue
        transport = httpx.AsyncHTTPTransport(uds=str(settings.worker_socket(worker)))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=5) as peer:
                answer = await peer.get("http://localhost/metrics", headers=headers)
            if answer.status_code == 200:
                texts[worker] = answer.text
        except httpx.TransportError as exc:
            log.warning("worker %d's metrics cannot be read: %s", worker, exc)
    return Response(merge_workers(texts), media_type=CONTENT_TYPE_LATEST)


def _from_worker(request: Request, settings: Settings) -> bool:
    """True for a request another worker of this run sent (it carries the run's secret)."""
    secret = request.headers.get(WORKER_HEADER, "")
    return bool(secret) and hmac.compare_digest(secret, settings.worker_secret)


def create_app(settings: Settings, services: svc.Services | None = None) -> Starlette:
    """The livesale ASGI app. ``settings.redis_url`` must point at a running Redis.

    Start-up connects to Redis and SQLite, applies migrations, makes sure stock is built in
    Redis and starts every component; shutdown stops them in reverse order.
    """
    registry = services.metrics if services else Metrics()
    routes: list[BaseRoute] = [
        # The sale's routes first and the buy click first among them: Starlette tries routes
        # in order, and a flash sale sends thousands of buy clicks a second.
        *orders.routes,
        *pages.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *catalogue.routes,
        *shows.routes,
        *api_keys.routes,
        *room.routes,
        *media.routes,
    ]

    @http.endpoint("This OpenAPI document")
    async def openapi_json(request: Request) -> Response:
        """This OpenAPI document."""
        return http.json_response(document)

    routes.append(Route("/api/openapi.json", openapi_json, methods=["GET"]))
    routes.append(Mount("/static", StaticFiles(directory=pages.WEB_DIR), name="static"))
    document = openapi.document(routes, settings)
    orders.describe(document, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = services or await svc.build(settings, registry)
        assemble(built)
        app.state.services = built
        started: list[svc.Component] = []
        try:
            await orders.ensure_stock(built)
            for start in STARTERS:
                started.append(await start(built))
            yield
        finally:
            for component in reversed(started):
                try:
                    await component.aclose()
                except Exception:
                    log.exception("closing %r failed", component)
            await built.close()

    handlers: dict[Any, Any] = {
        LivesaleError: http.handle_livesale_error,
        HTTPException: pages.handle_http_exception,
        ClientDisconnect: http.handle_client_gone,
        Exception: http.handle_unexpected,
    }
    app = App(
        settings=settings,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=handlers,
        middleware=[
            Middleware(MetricsMiddleware, metrics=registry),
            # Before any route: a request naming another host (DNS rebinding) reaches none.
            Middleware(pages.BrowserEdge, settings=settings),
            # Outside BodyLimit, so its 413s on WHIP/WHEP carry CORS headers too.
            Middleware(media.Cors),
            Middleware(http.BodyLimit, limit=settings.max_body_bytes),
        ],
    )
    app.state.settings = settings
    return app
