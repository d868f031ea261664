"""What a viewer does on the watch page, for the browser tests: watch at once, take a nickname
at the first chat line, open the line-up sheet behind the bag on a phone."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

#: The page's room has a viewer token (a watcher's socket has none).
SIGNED_IN = "() => window.livesale.room.state.you?.role === 'viewer'"


async def sign_in(page: Page, nickname: str) -> None:
    """Tap into the chat, which asks a watcher for a nickname, and join with ``nickname``."""
    await page.get_by_label("Say something").click()
    dialog = page.locator("#nickname-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("nickname").fill(nickname)
    await dialog.get_by_role("button", name="Join the show").click()
    await expect(dialog).to_be_hidden()
    await page.wait_for_function(SIGNED_IN)


async def open_lineup(page: Page) -> None:
    """Open the line-up sheet when it is behind the bag button (a phone), and leave it open."""
    bag = page.locator("#bag")
    if await bag.is_visible() and await bag.get_attribute("aria-expanded") != "true":
        await bag.click()
    await expect(page.locator("#lineup-panel")).to_be_visible()


async def close_lineup(page: Page) -> None:
    """Close the line-up sheet when it is open over the page (a phone)."""
    bag = page.locator("#bag")
    if await bag.is_visible() and await bag.get_attribute("aria-expanded") == "true":
        await page.locator("#lineup-panel").get_by_role("button", name="Close").click()
    await expect(bag).not_to_have_attribute("aria-expanded", "true")


async def join(page: Page, url: str, nickname: str, items: int) -> None:
    """Open the watch page (it plays and draws the line-up with no input), sign in as
    ``nickname``, and open the line-up."""
    await page.goto(url)
    await expect(page.locator("#lineup li.item")).to_have_count(items)
    await expect(page.locator("#nickname-dialog")).to_be_hidden()
    await sign_in(page, nickname)
    await open_lineup(page)


async def pay_with_test_card(checkout: Locator, amount: str) -> None:
    """Fill in Ava Berg's shipping details in the open checkout and pay ``amount`` (its
    words on the button, "€39.90") with the test card."""
    await checkout.get_by_label("Name").fill("Ava Berg")
    await checkout.get_by_label("Email").fill("ava@example.com")
    await checkout.get_by_label("Address").fill("1 Harbour Street\nMalmö")
    await checkout.get_by_role("radio", name="Test card (no real money)").check()
    await checkout.get_by_label("Test card token").fill("tok_visa")
    await checkout.get_by_role("button", name=f"Pay {amount}").click()


def buy_by_api(
    base: str, token: str, show_id: str, sku: str, qty: int = 1, name: str = "Ava Berg"
) -> dict[str, Any]:
    """A viewer's order of ``qty`` × ``sku``, held and paid with the test provider over the
    API (for the tests of the pages that show orders)."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as buyer:
        held = buyer.post(
            f"/api/shows/{show_id}/holds",
            json={"sku": sku, "qty": qty, "idempotency_key": f"{sku}-{qty}"},
        )
        assert held.status_code == 201, held.text
        paid = buyer.post(
            f"/api/holds/{held.json()['hold_id']}/checkout",
            json={
                "payment": {"provider": "test", "token": "tok_visa"},
                "shipping": {"name": name, "address": "2 Harbour St", "email": "a@example.com"},
            },
        )
        assert paid.status_code == 201, paid.text
        order: dict[str, Any] = paid.json()
        return order
