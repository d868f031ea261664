"""Server-rendered pages (the landing page listing shows, the watch and studio pages) and
:class:`BrowserEdge`, which checks the ``Host`` of every request and gives every response the
headers browsers act on."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livesale import http, origins
from livesale import services as svc
from livesale.config import STRIPE_JS_URL, Settings
from livesale.errors import BadRequest, LivesaleError, Misdirected
from livesale.http import Handler, endpoint, problem_response
from livesale.shows import SHOWS, Show

log = logging.getLogger("livesale.pages")

#: Plain HTML, CSS and ES modules for the browser; no build step.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

#: Where Stripe's own Stripe.js opens the bank's check (3-D Secure).
STRIPE_HOOKS_ORIGIN = "https://hooks.stripe.com"

#: While the test provider is on, every page says so at its top (the watch and studio pages
#: draw the same banner from ``GET /api/payments``; the landing's script puts it in the
#: page's language).
TEST_MODE_BANNER = (
    '<div class="test-mode-banner" role="status">Test mode — payments are not real</div>'
)

# The pages' fixed words are written in English here and carry ``data-i18n`` keys: the
# page's script (``web/js/landing.js``) puts them in the reader's language, and times in
# ``<time datetime>`` are formatted there by ``Intl``. Titles and names stay as written.
_STATE = {
    "live": ("landing.badge.live", "Live now"),
    "paused": ("landing.badge.paused", "Paused"),
    "scheduled": ("landing.badge.scheduled", "Upcoming"),
    "ended": ("landing.badge.ended", "Ended"),
}

_HEAD = (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    '<meta name=viewport content="width=device-width, initial-scale=1">'
    '<meta name="referrer" content="no-referrer">'
    "<title{title_key}>{title}</title>"
    '<link rel=icon href="/static/img/icon.svg" type="image/svg+xml">'
    '<link rel=stylesheet href="/static/css/app.css">'
    '<link rel=stylesheet href="/static/landing.css">'
    '<script type=module src="/static/js/landing.js"></script></head>'
)


def _words(key: str, english: str, tag: str = "span", attrs: str = "") -> str:
    return f'<{tag}{attrs} data-i18n="{key}">{html.escape(english)}</{tag}>'


def _head(title: str, title_key: str) -> str:
    return _HEAD.format(title=html.escape(title), title_key=f' data-i18n="{title_key}"')


def _header(banner: str, heading: bool = False) -> str:
    """The pages' header; ``heading``: the name is the page's heading (the landing's)."""
    name = '<a href="/">livesale</a>'
    if heading:
        name = f'<h1 class="brand-name">{name}</h1>'
    return (
        f'{banner}<header class="site-head"><div class="brand">{name}'
        + _words("landing.tagline", "Live shopping: watch, ask, buy.", "p")
        + '</div><nav class="site-nav">'
        + _words("nav.orders", "My orders", "a", ' href="/orders"')
        + '<span id="language-slot"></span></nav></header>'
    )


def _moment(seconds: float | None) -> str:
    """A Unix time as RFC 3339 in UTC, for ``<time datetime>``."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _when(key: str, english: str, moment: str) -> str:
    """A moment of a show ("Starts 3 Dec, 19:00"): the page's script writes it in the reader's
    language and time zone; the server's English, in UTC, is only for a browser without
    scripts."""
    if not moment:
        return ""
    shown = html.escape(moment.replace("T", " ").removesuffix("+00:00"))
    return (
        f'<time class="when" datetime="{html.escape(moment)}" data-when="{key}">'
        f"{html.escape(english)} {shown}</time>"
    )


def _card(show: Show, cover: str, viewers: int) -> str:
    state = "paused" if show.state == "live" and show.paused else show.state
    key, label = _STATE[state]
    title = html.escape(show.title)
    host = html.escape(show.host_name)
    if cover:
        image = f'<img src="{html.escape(cover)}" alt="" loading="lazy" decoding="async">'
    else:
        image = '<span class="cover-none">livesale</span>'
    count = ""
    if show.state == "live":
        count = f'<span class="viewers" data-viewers="{viewers}">{viewers} watching</span>'
        when = _when("landing.started", "Started", _moment(show.started_at))
    elif show.state == "scheduled":
        when = _when("landing.starts", "Starts", show.scheduled_at or "")
    else:
        when = _when("landing.ended_at", "Ended", _moment(show.ended_at))
    go_key, go = (
        ("landing.see", "See the show") if show.state == "ended" else ("landing.watch", "Watch")
    )
    return (
        f'<li class="show {state}"><a href="/watch/{html.escape(show.id)}">'
        f'<span class="cover">{image}'
        f'<span class="badge {state}" data-i18n="{key}">{label}</span>{count}</span>'
        f'<span class="card-text"><strong class="title">{title}</strong>'
        f'<span class="host" data-host="{host}">with {host}</span>{when}'
        f'<span class="go" data-i18n="{go_key}">{go}</span></span></a></li>'
    )


def _section(key: str, english: str, cards: str, empty: tuple[str, str] | None = None) -> str:
    if not cards and empty is None:
        return ""
    body = cards
    if not cards and empty is not None:
        body = _words(empty[0], empty[1], "li", ' class="empty"')
    return (
        f'<section class="shelf" aria-labelledby="{key}">'
        + _words(key, english, "h2", f' id="{key}"')
        + f'<ul class="shows">{body}</ul></section>'
    )


@endpoint("The landing page: live shows first", response_media_type="text/html")
async def landing(request: Request) -> Response:
    """The landing page: live shows (cover, viewers, start time) first, then upcoming ones with
    their time, then the last ended ones."""
    store = svc.of(request).get(SHOWS)
    shows = await store.all()
    live = [s for s in shows if s.state == "live"]
    upcoming = [s for s in shows if s.state == "scheduled"]
    ended = [s for s in shows if s.state == "ended"][:20]
    listed = [*live, *upcoming, *ended]
    covers = await store.covers([s.id for s in listed])
    viewers = await store.viewers([s.id for s in live])
    counts = dict(zip((s.id for s in live), viewers, strict=True))
    cards = {
        s.id: _card(s, cover, counts.get(s.id, 0)) for s, cover in zip(listed, covers, strict=True)
    }

    def shelf(of: list[Show]) -> str:
        return "".join(cards[s.id] for s in of)

    nothing = ("landing.none", "No live or upcoming shows right now. Come back soon.")
    main = (
        _section("landing.live", "Live now", shelf(live), None if upcoming else nothing)
        + _section("landing.upcoming", "Upcoming", shelf(upcoming))
        + _section("landing.ended", "Ended", shelf(ended))
    )
    banner = TEST_MODE_BANNER if svc.of(request).settings.test_payments else ""
    return HTMLResponse(
        _head("livesale — live shows", "landing.page_title")
        + f'<body class="landing-page">{_header(banner, heading=True)}'
        + f"<main>{main}</main></body></html>"
    )


#: What a page says when it cannot be shown, by what went wrong: (key, English) of its
#: heading and its line.
_PROBLEMS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "no-show": (
        ("page_error.no_show.title", "This show does not exist"),
        ("page_error.no_show.body", "The link may be mistyped, or the show was removed."),
    ),
    "not-found": (
        ("page_error.not_found.title", "This page does not exist"),
        ("page_error.not_found.body", "The link may be mistyped, or the page was moved."),
    ),
    "busy": (
        ("page_error.busy.title", "We are busy right now"),
        ("page_error.busy.body", "The shop is very busy. Wait a moment, then reload the page."),
    ),
    "broken": (
        ("page_error.broken.title", "Something went wrong"),
        ("page_error.broken.body", "Something went wrong on our side. Try again in a moment."),
    ),
}


def error_page(status: int, kind: str) -> HTMLResponse:
    """A page that cannot be shown, as a page: a plain message and a link home, with
    ``status``; ``kind`` is a key of the messages (``no-show``, ``not-found``, ...)."""
    (title_key, title), (body_key, body) = _PROBLEMS[kind]
    return HTMLResponse(
        _head(f"{title} — livesale", title_key)
        + f'<body class="error-page">{_header("")}<main class="problem" data-kind="{kind}">'
        + _words(title_key, title, "h1")
        + _words(body_key, body, "p")
        + _words("page_error.home", "See all shows", "a", ' class="home" href="/"')
        + "</main></body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def page_errors(kind_404: str) -> Callable[[Handler], Handler]:
    """A page endpoint's errors as pages (:func:`error_page`), never a problem's JSON: a person
    opened it. ``kind_404`` says what a 404 means there (``no-show`` on a show's pages)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except LivesaleError as exc:
                if exc.status >= 500:
                    log.warning("page %s failed: %s", request.url.path, exc)
                if exc.status == 404:
                    return error_page(404, kind_404)
                return error_page(exc.status, "busy" if exc.status in (429, 503) else "broken")
            except Exception:
                log.exception("page %s crashed", request.url.path)
                return error_page(500, "broken")

        return page

    return wrap


#: Paths whose answers are for programs (the API, sockets, media, files): their 404s stay
#: problems whatever the client accepts.
_NOT_PAGES = ("/api/", "/ws/", "/whip", "/whep", "/static/", "/metrics", "/healthz")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's 404 for a path no route has: a page when a browser navigates there (it
    asks for ``text/html``), else the problem :func:`livesale.http.handle_http_exception`
    makes of it."""
    if (
        isinstance(exc, HTTPException)
        and exc.status_code == 404
        and "text/html" in request.headers.get("accept", "")
        and not request.url.path.startswith(_NOT_PAGES)
    ):
        return error_page(404, "not-found")
    return await http.handle_http_exception(request, exc)


def _file(name: str) -> Response:
    return FileResponse(
        WEB_DIR / name,
        media_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


async def _page(request: Request, name: str) -> Response:
    # The show must exist (a page saying it does not, otherwise); the page itself reads the
    # rest over the API.
    await svc.of(request).get(SHOWS).get(request.path_params["show_id"])
    return _file(name)


@endpoint("The viewer page of a show", response_media_type="text/html")
@page_errors("no-show")
async def watch(request: Request) -> Response:
    """The viewer page: video, line-up strip, ask to explain, want, buy, chat and hearts."""
    return await _page(request, "watch.html")


@endpoint("The host studio of a show", response_media_type="text/html")
@page_errors("no-show")
async def studio(request: Request) -> Response:
    """The host studio: camera, go live, line-up with Feature, requests, chat, live sales."""
    return await _page(request, "studio.html")


@endpoint("The buyer's orders on this device", response_media_type="text/html")
@page_errors("not-found")
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
        # hls.js plays HLS through a MediaSource, whose blob: URL is the video's source.
        "media-src 'self' blob:",
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
