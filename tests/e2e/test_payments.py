"""Paying on the watch page in Chromium: the shop's providers and nothing else, cards through
Stripe.js (localstripe's stand-in) with 3-D Secure and declines in words, the test-mode banner,
and the buyer hearing of a cancel or a refund."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    ViewportSize,
    expect,
)

from livesale.config import Settings
from tests.conftest import LiveServer, stripe_settings
from tests.e2e import viewer
from tests.localstripe import CARDS, LocalStripe
from tests.room.conftest import SKUS, make_show

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(300)]

#: Waits on the pages only catch a hang, however busy the machine (as in test_show_flow).
expect.set_options(timeout=180_000)

PHONE: ViewportSize = {"width": 390, "height": 844}
CARD = "Card"
MANUAL = "Pay on delivery / bank transfer"
TEST = "Test card (no real money)"
BANNER = "Test mode — payments are not real"


def running(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture
def manual_shop(settings: Settings) -> Iterator[LiveServer]:
    """A shop taking only pay on delivery or bank transfer (the default)."""
    yield from running(replace(settings, payments=("manual",)))


@pytest.fixture
def card_shop(settings: Settings, localstripe: LocalStripe) -> Iterator[LiveServer]:
    """A shop taking cards through Stripe (localstripe) and pay on delivery."""
    yield from running(stripe_settings(settings, localstripe, "manual"))


@pytest.fixture
def test_shop(settings: Settings) -> Iterator[LiveServer]:
    """A shop trying livesale out: pay on delivery and the test provider."""
    yield from running(replace(settings, payments=("manual", "test")))


def page_problems(page: Page) -> list[str]:
    """Uncaught script errors of ``page`` and frames its room did not know, as they happen."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        if "unknown message type" in message.text:
            problems.append(message.text)

    page.on("console", console)
    return problems


async def join(page: Page, server: LiveServer, show_id: str) -> None:
    """The buyer on ``page`` joins the show (the line-up drawn)."""
    await viewer.join(page, f"{server.url}/watch/{show_id}", "Ava", len(SKUS))


async def buy(page: Page, sku: str) -> Locator:
    """Press Buy on ``sku``; the checkout dialog, shipping filled in."""
    await page.locator(f'#lineup li[data-sku="{sku}"]').get_by_role("button", name="Buy").click()
    dialog = page.locator("#checkout-dialog")
    await expect(dialog).to_be_visible()
    pay = dialog.get_by_role("button", name=re.compile("^(Pay|Place order)"))
    await expect(pay).to_be_enabled()
    if await dialog.locator("#repeat-box").is_visible():  # a repeat purchase: change the details
        await dialog.get_by_role("button", name="Change").click()
    await dialog.get_by_label("Name").fill("Ava Berg")
    await dialog.get_by_label("Email").fill("ava@example.com")
    await dialog.get_by_label("Address").fill("2 Harbour Street, Malmö")
    return dialog


async def fill_card(dialog: Locator, number: str) -> None:
    """Type a card into the card element (the stand-in draws one input per field)."""
    await dialog.get_by_placeholder("number").fill(number)
    await dialog.get_by_placeholder("exp_month").fill("12")
    await dialog.get_by_placeholder("exp_year").fill("30")
    await dialog.get_by_placeholder("cvc").fill("123")
    await dialog.get_by_placeholder("postal_code").fill("21120")


def options(dialog: Locator) -> Locator:
    return dialog.locator("#pay-options").get_by_role("radio")


def orders(server: LiveServer, show_id: str) -> list[Any]:
    answer = httpx.get(
        f"{server.url}/api/orders", params={"show": show_id}, headers=server.merchant, timeout=30
    )
    answer.raise_for_status()
    result: list[Any] = answer.json()
    return result


async def test_only_manual_offers_no_card_and_no_test_token(
    manual_shop: LiveServer, browser: Browser
) -> None:
    """A shop taking only pay-on-delivery offers just that: no card element, no test token, no
    Stripe.js fetched; the order is confirmed with its payment due."""
    server = manual_shop
    show = make_show(server.url, server.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await join(page, server, show.id)

    dialog = await buy(page, SKUS[0])
    await expect(options(dialog)).to_have_count(1)
    manual = dialog.get_by_role("radio", name=MANUAL)
    await expect(manual).to_be_checked()
    await expect(dialog.locator("#pay-manual")).to_contain_text("pay on delivery or by bank")
    await expect(dialog.locator("#pay-stripe")).to_be_hidden()
    await expect(dialog.locator("#pay-test")).to_be_hidden()
    await expect(dialog.locator("#card-element input")).to_have_count(0)
    pay = dialog.get_by_role("button", name="Place order · €9.90")
    await pay.click()
    confirmation = page.locator("#confirm-dialog")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("You pay on delivery or by bank transfer")

    [order] = orders(server, show.id)
    assert (order["provider"], order["payment_status"], order["state"]) == (
        "manual",
        "due",
        "confirmed",
    )
    assert await page.evaluate("typeof window.Stripe") == "undefined"
    assert [url for url in requested if not url.startswith(server.url)] == []
    assert problems == []


async def test_card_and_manual_are_both_offered(
    card_shop: LiveServer, localstripe: LocalStripe, browser: Browser
) -> None:
    """A shop taking cards and pay-on-delivery offers both, cards first: the card element only
    with Card chosen, never a test token, and Stripe.js from the shop's address."""
    server = card_shop
    show = make_show(server.url, server.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    scripts: list[str] = []

    def script(request: Request) -> None:
        if request.resource_type == "script":
            scripts.append(request.url)

    page.on("request", script)
    await join(page, server, show.id)

    dialog = await buy(page, SKUS[0])
    await expect(options(dialog)).to_have_count(2)
    await expect(options(dialog).first).to_have_accessible_name(CARD)
    await expect(dialog.get_by_role("radio", name=CARD, exact=True)).to_be_checked()
    await expect(dialog.get_by_placeholder("number")).to_be_visible()
    await expect(dialog.locator("#pay-test")).to_be_hidden()
    await expect(dialog.get_by_role("button", name="Pay €9.90")).to_be_enabled()

    await dialog.get_by_text(MANUAL).click()
    await expect(dialog.get_by_placeholder("number")).to_be_hidden()
    await expect(dialog.locator("#pay-manual")).to_be_visible()
    await expect(dialog.get_by_role("button", name="Place order · €9.90")).to_be_enabled()
    await dialog.get_by_text(CARD, exact=True).click()
    await expect(dialog.get_by_placeholder("number")).to_be_visible()

    assert [s for s in scripts if "js.stripe.com" in s] == [localstripe.js_url]
    assert await page.locator("body").get_attribute("data-test-mode") == "false"
    await expect(page.locator(".test-mode-banner")).to_have_count(0)
    assert problems == []


async def test_3ds_card_is_confirmed_after_authentication(
    card_shop: LiveServer, localstripe: LocalStripe, browser: Browser
) -> None:
    """A card whose bank asks for 3-D Secure: failing it is a decline in words and the hold
    stays; completing it in Stripe's window confirms the order, authorized at Stripe."""
    server = card_shop
    show = make_show(server.url, server.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await join(page, server, show.id)

    dialog = await buy(page, SKUS[1])
    await fill_card(dialog, CARDS["3ds"])
    await dialog.get_by_role("button", name="Pay €9.90").click()
    await page.get_by_role("button", name="Fail authentication").click()
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".form-error")).to_contain_text("failed authentication")
    await expect(dialog.get_by_role("timer")).to_contain_text("4:")

    await dialog.get_by_role("button", name="Pay €9.90").click()
    await page.get_by_role("button", name="Complete authentication").click()
    confirmation = page.locator("#confirm-dialog")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("Item EYE-2")

    confirmed = [o for o in orders(server, show.id) if o["state"] == "confirmed"]
    assert len(confirmed) == 1, orders(server, show.id)
    order = confirmed[0]
    assert (order["provider"], order["payment_status"], order["test"]) == (
        "stripe",
        "authorized",
        False,
    )
    assert localstripe.intent(order["payment_ref"])["status"] == "requires_capture"
    assert problems == []


async def test_declined_card_shows_why_and_keeps_the_hold(
    card_shop: LiveServer, localstripe: LocalStripe, browser: Browser
) -> None:
    """A declined card says why in words; the hold stays, and another card pays for it."""
    server = card_shop
    show = make_show(server.url, server.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await join(page, server, show.id)
    stock = page.locator(f'#lineup li[data-sku="{SKUS[2]}"] .stock')
    await expect(stock).to_have_attribute("data-stock", "20")

    dialog = await buy(page, SKUS[2])
    await fill_card(dialog, CARDS["declined"])
    await dialog.get_by_role("button", name="Pay €9.90").click()
    await expect(dialog.locator(".form-error")).to_have_text(
        "Payment declined: Your card was declined. Try another card."
    )
    await expect(dialog).to_be_visible()
    await expect(stock).to_have_attribute("data-stock", "19")
    [declined] = orders(server, show.id)
    assert declined["state"] == "declined"

    await fill_card(dialog, CARDS["visa"])
    await dialog.get_by_role("button", name="Pay €9.90").click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    states = sorted(o["state"] for o in orders(server, show.id))
    assert states == ["confirmed", "declined"]
    assert problems == []


async def banner_check(browser: Browser, server: LiveServer, test_mode: bool) -> None:
    """The landing, watch and studio pages say payments are not real exactly when the test
    provider is on; then the watch page offers test tokens, only with that provider chosen."""
    show = make_show(server.url, server.api_key)
    expected = 1 if test_mode else 0

    landing = await browser.new_page(viewport=PHONE)
    await landing.goto(server.url + "/")
    await expect(landing.get_by_role("link", name="Glow")).to_be_visible()
    await expect(landing.get_by_role("status").filter(has_text=BANNER)).to_have_count(expected)

    page = await browser.new_page(viewport=PHONE)
    await join(page, server, show.id)
    await expect(page.locator("body")).to_have_attribute("data-test-mode", str(test_mode).lower())
    await expect(page.get_by_role("status").filter(has_text=BANNER)).to_have_count(expected)
    if test_mode:
        await expect(page.locator(".test-mode-banner")).to_be_in_viewport()
        dialog = await buy(page, SKUS[0])
        await expect(options(dialog)).to_have_count(2)
        await expect(dialog.get_by_label("Test card token")).to_be_hidden()
        await dialog.get_by_text(TEST).click()
        token = dialog.get_by_label("Test card token")
        await expect(token).to_be_visible()
        await expect(token).to_have_value("")
        await token.fill("tok_decline")
        await dialog.get_by_role("button", name="Pay €9.90").click()
        await expect(dialog.locator(".form-error")).to_contain_text("Payment declined")
        await token.fill("tok_visa")
        await dialog.get_by_role("button", name="Pay €9.90").click()
        confirmation = page.locator("#confirm-dialog")
        await expect(confirmation).to_contain_text("A test order: no real money moved.")

    studio = await browser.new_page(viewport=PHONE)
    await studio.goto(f"{server.url}/studio/{show.id}#token={show.host_token}")
    await expect(studio.locator("body")).to_have_attribute("data-test-mode", str(test_mode).lower())
    await expect(studio.get_by_role("status").filter(has_text=BANNER)).to_have_count(expected)


async def test_test_mode_banner_on_every_page(test_shop: LiveServer, browser: Browser) -> None:
    """With the test provider on, the landing, watch and studio pages say payments are not
    real; the test token field shows only with the test card chosen, and is not prefilled."""
    await banner_check(browser, test_shop, test_mode=True)


async def test_no_test_mode_banner_without_the_test_provider(
    manual_shop: LiveServer, browser: Browser
) -> None:
    """Without the test provider no page shows the test-mode banner."""
    await banner_check(browser, manual_shop, test_mode=False)


async def test_buyer_hears_of_a_cancel_and_a_refund(
    card_shop: LiveServer, localstripe: LocalStripe, browser: Browser
) -> None:
    """When the shop cancels an order paid by card, or refunds one, the buyer's page says so in
    words."""
    server = card_shop
    show = make_show(server.url, server.api_key)
    page = await browser.new_page(viewport=PHONE)
    problems = page_problems(page)
    await join(page, server, show.id)
    merchant = httpx.Client(base_url=server.url, headers=server.merchant, timeout=30)

    dialog = await buy(page, SKUS[0])
    await fill_card(dialog, CARDS["visa"])
    await dialog.get_by_role("button", name="Pay €9.90").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Keep watching").click()
    [by_card] = orders(server, show.id)
    assert merchant.post(f"/api/orders/{by_card['id']}/cancel").status_code == 200
    notices = page.locator("#notices li")
    await expect(notices).to_have_count(1)
    await expect(notices.first.locator("span")).to_have_text(
        f"Your order for Item LIP-1 (order {by_card['id']}) was cancelled by the shop;"
        " you were not charged."
    )
    await notices.first.get_by_role("button", name="Dismiss").click()
    await expect(notices).to_have_count(0)

    dialog = await buy(page, SKUS[3])
    await dialog.get_by_text(MANUAL).click()
    await dialog.get_by_role("button", name="Place order · €9.90").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Keep watching").click()
    [by_hand] = [o for o in orders(server, show.id) if o["provider"] == "manual"]
    assert merchant.post(f"/api/orders/{by_hand['id']}/paid").status_code == 200
    assert merchant.post(f"/api/orders/{by_hand['id']}/refund").status_code == 200
    await expect(notices).to_have_count(1)
    await expect(notices.first).to_contain_text(
        f"The shop refunded your order for Item HAIR-4 (order {by_hand['id']}): €9.90 goes back"
    )
    merchant.close()
    assert problems == []
