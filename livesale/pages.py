"""Server-rendered pages: the landing page listing shows."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from livesale import services as svc
from livesale.shows import SHOWS, Show

#: Plain HTML, CSS and ES modules for the browser; no build step.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

_STATE_LABEL = {"live": "Live now", "scheduled": "Upcoming", "ended": "Ended"}

#: While the test provider is on, every page says so at its top (the watch and studio pages
#: draw the same banner from ``GET /api/payments``).
TEST_MODE_BANNER = (
    '<div class="test-mode-banner" role="status">Test mode — payments are not real</div>'
)


def _card(show: Show) -> str:
    state = "paused" if show.state == "live" and show.paused else show.state
    label = "Paused" if state == "paused" else _STATE_LABEL[show.state]
    title = html.escape(show.title)
    host = html.escape(show.host_name)
    when = f"<span class=when>{html.escape(show.scheduled_at)}</span>" if show.scheduled_at else ""
    action = "Watch" if show.state != "ended" else "See the show"
    return (
        f'<li class="show {state}"><a href="/watch/{html.escape(show.id)}">'
        f'<span class="badge {state}">{label}</span>'
        f"<strong>{title}</strong><span class=host>with {host}</span>{when}"
        f'<span class="go">{action} →</span></a></li>'
    )


async def landing(request: Request) -> Response:
    """The landing page: live shows first, then upcoming, then ended."""
    shows = await svc.of(request).get(SHOWS).all()
    live = [s for s in shows if s.state != "ended"]
    ended = [s for s in shows if s.state == "ended"][:20]
    body = "".join(_card(s) for s in live) or '<li class="empty">No live or upcoming shows.</li>'
    past = "".join(_card(s) for s in ended)
    past_html = f"<h2>Ended</h2><ul class=shows>{past}</ul>" if past else ""
    banner = TEST_MODE_BANNER if svc.of(request).settings.test_payments else ""
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<title>livesale — live shows</title>"
        '<link rel=icon href="/static/img/icon.svg" type="image/svg+xml">'
        '<link rel=stylesheet href="/static/landing.css"></head><body>'
        f"{banner}<header><h1>livesale</h1><p>Live shopping: watch, ask, buy.</p></header>"
        f"<main><h2>Live and upcoming</h2><ul class=shows>{body}</ul>{past_html}</main>"
        "</body></html>"
    )


def _file(name: str) -> Response:
    return FileResponse(
        WEB_DIR / name,
        media_type="text/html",
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )


async def _page(request: Request, name: str) -> Response:
    # The show must exist (404 problem otherwise); the page itself reads the rest over the API.
    await svc.of(request).get(SHOWS).get(request.path_params["show_id"])
    return _file(name)


async def watch(request: Request) -> Response:
    """The viewer page: video, line-up strip, ask to explain, want, buy, chat and hearts."""
    return await _page(request, "watch.html")


async def studio(request: Request) -> Response:
    """The host studio: camera, go live, line-up with Feature, requests, chat, live sales."""
    return await _page(request, "studio.html")


async def my_orders(request: Request) -> Response:
    """The buyer's orders on this device, across shows, with their parcels' tracking."""
    return _file("orders.html")


routes: list[BaseRoute] = [
    Route("/", landing, methods=["GET"]),
    Route("/orders", my_orders, methods=["GET"]),
    Route("/watch/{show_id}", watch, methods=["GET"]),
    Route("/studio/{show_id}", studio, methods=["GET"]),
]
