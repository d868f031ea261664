"""The headers browsers act on: the pages' Content-Security-Policy, framing, nosniff and no
Referer, on real responses; and pages that need no inline script or style to run under it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from livesale.config import Settings
from livesale.pages import WEB_DIR
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
