"""The headers browsers act on: the pages' Content-Security-Policy, framing, nosniff and no
Referer, on real responses; and pages that need no inline script or style to run under it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from livesale.config import Settings
from livesale.errors import Unavailable
from livesale.pages import WEB_DIR, page_errors
from tests.conftest import LiveServer, stripe_settings
from tests.localstripe import LocalStripe
from tests.room.conftest import make_show


def csp(response: httpx.Response) -> dict[str, list[str]]:
    """The response's CSP as ``{directive: [sources]}``."""
    policy = response.headers["content-security-policy"]
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {name: sources for name, *sources in parts}


def page_responses(server: LiveServer) -> list[httpx.Response]:
    show = make_show(server.url, server.api_key)
    with server.client() as http:
        return [
            http.get(path)
            for path in ("/", f"/watch/{show.id}", f"/studio/{show.id}", "/static/watch.html")
        ]


@pytest.fixture
def card_shop(settings: Settings, localstripe: LocalStripe) -> Iterator[LiveServer]:
    live = LiveServer(stripe_settings(settings, localstripe, "manual")).start()
    yield live
    live.stop()


@pytest.fixture
def embedding(settings: Settings) -> Iterator[LiveServer]:
    shops = ("https://shop.example", "https://www.other-shop.example:8443")
    live = LiveServer(replace(settings, allow_embed=shops)).start()
    yield live
    live.stop()


def test_pages_have_a_strict_policy(server: LiveServer) -> None:
    """Every page: scripts and styles of this server only, nothing inline, nothing of
    Stripe's without cards, its own sockets, and no framing at all."""
    origin = server.url
    for response in page_responses(server):
        assert response.status_code == 200, response.url
        policy = csp(response)
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert "frame-src" not in policy
        assert policy["connect-src"][0] == "'self'"
        assert origin.replace("http://", "ws://") in policy["connect-src"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert "'unsafe-inline'" not in response.headers["content-security-policy"]
        assert "'unsafe-eval'" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_card_shop_pages_allow_stripe_js_and_its_api(
    card_shop: LiveServer, localstripe: LocalStripe
) -> None:
    """With the stripe provider on, Stripe.js's origin may run scripts and frames and its API
    be called; nothing else is added."""
    for response in page_responses(card_shop):
        policy = csp(response)
        assert policy["script-src"] == ["'self'", localstripe.url]
        assert policy["frame-src"] == [localstripe.url]
        assert localstripe.url in policy["connect-src"]


def test_allow_embed_lists_the_shops_as_frame_ancestors(embedding: LiveServer) -> None:
    """--allow-embed lets exactly those origins frame the pages (and drops X-Frame-Options,
    which cannot name them)."""
    for response in page_responses(embedding):
        assert csp(response)["frame-ancestors"] == [
            "https://shop.example",
            "https://www.other-shop.example:8443",
        ]
        assert "x-frame-options" not in response.headers


def test_every_response_has_nosniff_and_no_referrer(server: LiveServer) -> None:
    """API answers, problems, metrics, static files, 405s and refused upgrades: nosniff and
    no-referrer on each, and the page policy only on HTML."""
    with server.client() as http:
        responses = [
            http.get("/api/shows"),
            http.get("/api/products/NOPE"),
            http.post("/api/viewers", json={"nickname": ""}),
            http.delete("/api/products"),
            http.get("/healthz"),
            http.get("/metrics"),
            http.get("/api/openapi.json"),
            http.get("/static/js/watch.js"),
            http.get("/ws/shows/nope"),
            http.options("/whep/nope"),
        ]
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        assert "content-security-policy" not in response.headers, where
    assert responses[7].headers["content-type"].startswith("text/javascript")


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline script"),
    (re.compile(r"<style\b", re.I), "a style element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an event handler attribute"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_pages_need_nothing_inline(server: LiveServer) -> None:
    """No page, served or on disk, has an inline script, style or handler, and no script sets
    a style attribute: the policy allows none, so each would break a page."""
    html = [(p.name, p.read_text()) for p in WEB_DIR.glob("*.html")]
    html += [(r.url.path, r.text) for r in page_responses(server)]
    for name, text in html:
        for pattern, what in INLINE:
            assert not pattern.search(text), f"{name} has {what}"
    for script in (WEB_DIR / "js").glob("*.js"):
        text = script.read_text()
        assert not re.search(r"setAttribute\(\s*[\"']style|\.innerHTML|cssText", text), script


def test_an_unknown_show_is_an_html_page(server: LiveServer) -> None:
    """/watch/… and /studio/… of an unknown show answer 404 with a page (never a problem's
    JSON) saying so in plain words, with a link home, under the same policy."""
    with server.client() as http:
        for path in ("/watch/unknown", "/studio/unknown"):
            response = http.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("text/html"), path
            assert "This show does not exist" in response.text
            assert 'href="/"' in response.text and "See all shows" in response.text
            assert "problem" not in response.headers["content-type"]
            assert not response.text.lstrip().startswith("{")
            assert "unknown" not in response.text  # nothing of the request is echoed
            assert csp(response)["script-src"] == ["'self'"]
            for pattern, what in INLINE:
                assert not pattern.search(response.text), f"{path} has {what}"
        # The API keeps answering problems.
        api = http.get("/api/shows/unknown")
        assert api.status_code == 404
        assert api.headers["content-type"] == "application/problem+json"


async def test_any_page_error_is_an_html_page() -> None:
    """A page that fails for another reason is a page too: busy (503) or broken (500), in
    plain words, with its status and no internals."""

    async def busy(request: Request) -> Response:
        raise Unavailable("the shows part is not running")

    async def crashed(request: Request) -> Response:
        raise RuntimeError("KeyError: 'featured' in frame 3")

    request = Request({"type": "http", "method": "GET", "path": "/watch/x", "headers": []})
    for handler, status, words in ((busy, 503, "We are busy right now"),
                                   (crashed, 500, "Something went wrong")):  # fmt: skip
        response = await page_errors("no-show")(handler)(request)
        assert response.status_code == status
        assert response.media_type == "text/html"
        text = bytes(response.body).decode()
        assert words in text and 'href="/"' in text
        assert "part is not running" not in text and "KeyError" not in text


def test_an_unknown_page_is_a_page_for_browsers(server: LiveServer) -> None:
    """A path no route has is a page when a browser navigates there, and stays a problem for
    a program, and under /api, whatever it accepts."""
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    with server.client() as http:
        page = http.get("/no-such-page", headers=browser)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "This page does not exist" in page.text and 'href="/"' in page.text
        for response in (http.get("/no-such-page"), http.get("/api/nothing", headers=browser)):
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
