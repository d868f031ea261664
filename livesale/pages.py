"""Server-rendered pages (the landing page listing shows, the watch and studio pages) and
:class:`BrowserEdge`, which checks the ``Host`` of every request and gives every response the
headers browsers act on."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livesale import origins
from livesale import services as svc
from livesale.config import STRIPE_JS_URL, Settings
from livesale.errors import BadRequest, LivesaleError, Misdirected
from livesale.http import endpoint, problem_response
from livesale.shows import SHOWS, Show

#: Plain HTML, CSS and ES modules for the browser; no build step.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

#: Where Stripe's own Stripe.js opens the bank's check (3-D Secure).
STRIPE_HOOKS_ORIGIN = "https://hooks.stripe.com"

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


@endpoint("The landing page: live shows first", response_media_type="text/html")
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
        headers={"Cache-Control": "no-cache"},
    )


async def _page(request: Request, name: str) -> Response:
    # The show must exist (404 problem otherwise); the page itself reads the rest over the API.
    await svc.of(request).get(SHOWS).get(request.path_params["show_id"])
    return _file(name)


@endpoint("The viewer page of a show", response_media_type="text/html")
async def watch(request: Request) -> Response:
    """The viewer page: video, line-up strip, ask to explain, want, buy, chat and hearts."""
    return await _page(request, "watch.html")


@endpoint("The host studio of a show", response_media_type="text/html")
async def studio(request: Request) -> Response:
    """The host studio: camera, go live, line-up with Feature, requests, chat, live sales."""
    return await _page(request, "studio.html")


@endpoint("The buyer's orders on this device", response_media_type="text/html")
async def my_orders(request: Request) -> Response:
    """The buyer's orders on this device, across shows, with their parcels' tracking."""
    return _file("orders.html")


routes: list[BaseRoute] = [
    Route("/", landing, methods=["GET"]),
    Route("/orders", my_orders, methods=["GET"]),
    Route("/watch/{show_id}", watch, methods=["GET"]),
    Route("/studio/{show_id}", studio, methods=["GET"]),
]


#: On every response: no content sniffing (a JSON body is never run as a script or drawn as
#: HTML), and no URL of a page (the studio's carries the host token until the page drops it)
#: in the Referer of anything it loads.
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
#: Host values already found good; bounded, as anyone may send any number of literals.
_KNOWN_HOSTS_MAX = 256


def content_security_policy(settings: Settings) -> str:
    """The pages' CSP: scripts and styles of this server only (no inline ones), Stripe.js and
    its API only when the shop takes cards, and no framing but by ``--allow-embed`` origins."""
    scripts = ["'self'"]
    # The room socket is same-origin; 'self' covers ws: and wss: in CSP 3, but not in every
    # browser still in use, so each public origin's socket origin is named too (CSP's source
    # grammar has no IPv6 literals: those are left to 'self').
    public = [o for o in origins.of(settings).public if "[" not in o]
    connect = ["'self'", *(o.replace("http", "ws", 1) for o in public)]
    frames = []
    if "stripe" in settings.providers:
        stripe_js = origins.origin_of(settings.stripe_js_url)
        scripts.append(stripe_js)
        # The card element and 3-D Secure are Stripe.js's frames (for Stripe's own Stripe.js,
        # the bank's check is on hooks.stripe.com); its calls go to Stripe's API.
        frames.append(stripe_js)
        if stripe_js == origins.origin_of(STRIPE_JS_URL):
            frames.append(STRIPE_HOOKS_ORIGIN)
        connect.append(origins.origin_of(settings.stripe_api_base))
    embed = [origins.origin_of(o) for o in settings.allow_embed] or ["'none'"]
    directives = [
        "default-src 'none'",
        "script-src " + " ".join(scripts),
        "style-src 'self'",
        # Product images are wherever the merchant keeps them (any http or https URL).
        "img-src 'self' https: http:",
        "media-src 'self'",
        "connect-src " + " ".join(dict.fromkeys(connect)),
        *(["frame-src " + " ".join(frames)] if frames else []),
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors " + " ".join(embed),
    ]
    return "; ".join(directives)


class BrowserEdge:
    """ASGI middleware around the whole app.

    * Every HTTP request and WebSocket upgrade must name this server in ``Host``
      (:mod:`livesale.origins`): ``421`` for another host, ``400`` for none or a malformed one.
    * Every response gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
      no-referrer``; every HTML one the pages' Content-Security-Policy (and, unless
      ``--allow-embed`` lets shops frame the player, ``X-Frame-Options: DENY`` for browsers
      older than CSP's ``frame-ancestors``).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = origins.of(settings)
        self.page = [(b"content-security-policy", content_security_policy(settings).encode())]
        if not settings.allow_embed:
            self.page.append((b"x-frame-options", b"DENY"))
        self.known: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        page = self.page

        async def sending(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = [*message.get("headers", ()), *_ALWAYS]
                for name, value in headers:
                    if name == b"content-type" and value.startswith(b"text/html"):
                        headers += page
                        break
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, sending)
        elif scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await problem_response(refusal)(scope, receive, sending)
        else:
            await send({"type": "websocket.close", "code": 1008})  # refused before the upgrade

    def _refusal(self, scope: Scope) -> LivesaleError | None:
        host: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                if host is not None:
                    return BadRequest("more than one Host header (RFC 9112 §3.2)")
                host = value
        if host is None:
            # HTTP/1.0 may leave it out; no browser does.
            if scope.get("http_version") == "1.0":
                return None
            return BadRequest("the request has no Host header (RFC 9112 §3.2)")
        if host in self.known:
            return None
        name = origins.host_name(host.decode("latin-1"))
        if name is None:
            return BadRequest("the Host header is malformed (RFC 9112 §3.2)")
        if not self.origins.host_allows(name):
            return Misdirected(
                f"this server does not answer for {name!r}; its public origins are set with"
                " --public-origin"
            )
        if len(self.known) < _KNOWN_HOSTS_MAX:
            self.known.add(host)
        return None
