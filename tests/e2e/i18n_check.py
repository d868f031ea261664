"""What English a page in another language still shows, for the tests of the zh-CN pages."""

from __future__ import annotations

import re
from collections.abc import Iterable

from playwright.async_api import Page

#: Attributes a reader hears or sees on an element besides its text.
ATTRIBUTES = ("aria-label", "placeholder", "title", "alt")

#: A run of ASCII letters; three or more make a word worth checking ("OK", "x" do not).
WORD = re.compile(r"[A-Za-z]+")
MIN_LENGTH = 3

#: The page's visible text: the body's innerText (which leaves out what is not rendered),
#: the document's title, button-like inputs' values and the attributes of visible elements.
_VISIBLE_TEXT = """(names) => {
    const parts = [document.title, document.body ? document.body.innerText : ""];
    for (const el of document.querySelectorAll("*")) {
        const seen = el.checkVisibility
            ? el.checkVisibility({ visibilityProperty: true })
            : el.getClientRects().length > 0;
        if (!seen) continue;
        for (const name of names) {
            const value = el.getAttribute(name);
            if (value) parts.push(value);
        }
        if (el instanceof HTMLInputElement && ["button", "submit", "reset"].includes(el.type)) {
            parts.push(el.value);
        }
    }
    return parts.join("\\n");
}"""


def words(texts: Iterable[str]) -> set[str]:
    """The lower-case ASCII words of ``texts`` (a title gives each of its words)."""
    return {word.lower() for text in texts for word in WORD.findall(text)}


async def english_left(page: Page, allowed: set[str]) -> list[str]:
    """The words of three or more ASCII letters that ``page`` shows and ``allowed`` does not
    hold, each once, in the order they first appear (case-insensitive).

    ``allowed`` is what may stay in Latin letters whatever the language: product and show
    titles, nicknames, brand words ("livesale"), currency codes; an entry of several words
    allows each of them. A zh-CN page that left no English answers ``[]``.
    """
    text: str = await page.evaluate(_VISIBLE_TEXT, list(ATTRIBUTES))
    permitted = words(allowed)
    left: dict[str, str] = {}
    for word in WORD.findall(text):
        if len(word) >= MIN_LENGTH and word.lower() not in permitted:
            left.setdefault(word.lower(), word)
    return list(left.values())
