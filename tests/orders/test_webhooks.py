"""Where the merchant's webhook may point: https only and public addresses only unless the
operator allows more, checked when the URL is set and again, resolved, at every delivery."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import replace

import pytest

from livesale.config import Settings
from livesale.orders.webhooks import address_kind, pinned
from tests.catalogue.test_routes import assert_problem
from tests.conftest import LiveServer
from tests.orders.conftest import Receiver, Shop, wait_for
from tests.orders.test_returns import buy


@pytest.fixture
def insecure_only(settings: Settings) -> Iterator[Shop]:
    """A shop allowing plain-http webhooks, but only to public addresses."""
    # Explicit both ways: a test taking the receiver has both allowed by its settings.
    live = LiveServer(
        replace(settings, allow_insecure_webhooks=True, allow_private_webhooks=False)
    ).start()
    shop = Shop.of(live)
    yield shop
    shop.close()
    live.stop()


def deliveries_with_errors(shop: Shop) -> list[dict[str, object]]:
    return [d for d in shop.ok(shop.client.get("/api/webhook/deliveries")) if d["last_error"]]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://hooks.example/h", "webhook-not-https"),
        ("https://127.0.0.1/h", "webhook-not-public"),
        ("https://10.1.2.3:8443/h", "webhook-not-public"),
        ("https://169.254.169.254/latest/meta-data", "webhook-not-public"),
        ("https://[::1]:8443/h", "webhook-not-public"),
        ("https://[::ffff:127.0.0.1]/h", "webhook-not-public"),
        ("https://[fe80::1]/h", "webhook-not-public"),
        ("https://192.168.1.20/h", "webhook-not-public"),
        ("https://0.0.0.0/h", "webhook-not-public"),
        ("https://" + "a" * 64 + ".example/h", "validation"),  # no DNS label is that long
    ],
)
def test_refused_urls_name_the_rule(shop: Shop, url: str, rule: str) -> None:
    """http and non-public address literals are 422 problems naming the rule and the flag
    that lifts it; nothing is stored."""
    problem = assert_problem(shop.client.put("/api/webhook", json={"url": url}), 422, rule)
    if rule != "validation":
        flag = "--allow-insecure-webhooks" if rule.endswith("https") else "--allow-private-webhooks"
        assert flag in problem["detail"]
    assert shop.client.get("/api/webhook/deliveries").json() == []
    with shop.db() as conn:
        assert conn.execute("SELECT url FROM webhook_endpoint").fetchall() == []


def test_public_https_url_is_taken(shop: Shop) -> None:
    """An https URL with a host name (resolved at delivery) or a public address is taken."""
    for url in ("https://hooks.shop.example/livesale", "https://192.0.2.0.example/x"):
        assert shop.ok(shop.client.put("/api/webhook", json={"url": url}))["url"] == url


def test_name_resolving_to_loopback_is_refused_at_delivery(
    insecure_only: Shop, receiver: Receiver
) -> None:
    """``localhost`` passes when set (it is a name), but resolves to loopback: no delivery
    reaches the receiver, and the log says which rule refused it."""
    shop = insecure_only
    receiver.failures_left = 0
    url = f"http://localhost:{receiver.server_port}/hook"
    shop.ok(shop.client.put("/api/webhook", json={"url": url}))
    shop.product("TEA", 3)
    buy(shop, shop.show([{"sku": "TEA"}]), "TEA", 1)
    [refused, *_] = wait_for(lambda: deliveries_with_errors(shop))
    error = str(refused["last_error"])
    assert error.startswith("refused: localhost resolves to ") and "a loopback address" in error
    assert "--allow-private-webhooks" in error
    assert refused["state"] == "queued" and refused["last_status"] is None
    assert receiver.received == []


def test_stored_url_breaking_the_rules_is_refused_at_delivery(
    receiver: Receiver, settings: Settings
) -> None:
    """A URL stored before the rules (or by hand) is held to them at delivery too: a server
    that allows neither http nor private addresses posts nothing to it."""
    live = LiveServer(
        replace(settings, allow_insecure_webhooks=False, allow_private_webhooks=False)
    ).start()
    strict = Shop.of(live)
    try:
        strict.ok(strict.client.put("/api/webhook", json={"url": "https://hooks.example/h"}))
        with strict.db() as conn:
            conn.execute(
                "UPDATE webhook_endpoint SET url = ?",
                (f"http://127.0.0.1:{receiver.server_port}/h",),
            )
        strict.product("TEA", 3)
        buy(strict, strict.show([{"sku": "TEA"}]), "TEA", 1)
        [refused, *_] = wait_for(lambda: deliveries_with_errors(strict))
        assert "must use https" in str(refused["last_error"])
        assert receiver.received == []
    finally:
        strict.close()
        live.stop()


def test_pinned_request_keeps_the_name() -> None:
    """A delivery goes to the address that was checked, with the host name kept in ``Host``
    and for TLS (SNI and the certificate check)."""
    url = "https://user@hooks.shop.example:8443/in?x=1"
    assert pinned(url, ipaddress.ip_address("192.0.2.10")) == (
        "https://user@192.0.2.10:8443/in?x=1",
        {"Host": "hooks.shop.example:8443"},
        {"sni_hostname": "hooks.shop.example"},
    )
    target, host, _ = pinned("https://hooks.shop.example/", ipaddress.ip_address("2001:db8::5"))
    assert (target, host) == ("https://[2001:db8::5]/", {"Host": "hooks.shop.example"})


def test_address_kinds() -> None:
    """Each non-public kind is named; a public address has none."""
    kinds = {
        "127.0.0.1": "a loopback",
        "::1": "a loopback",
        "::ffff:10.0.0.1": "a private",
        "169.254.0.1": "a link-local",
        "100.64.0.1": "a non-global",
        "224.0.0.1": "a multicast",
        "0.0.0.0": "an unspecified",
        "172.16.0.1": "a private",
        "8.8.8.8": "",
        "2606:4700::1111": "",
    }
    for text, kind in kinds.items():
        assert address_kind(ipaddress.ip_address(text)) == kind, text
