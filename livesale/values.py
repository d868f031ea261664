"""Value types every domain shares: SKUs and stock counters (money is :mod:`livesale.money`).

They live below the domains so the catalogue, shows, the room and orders can all use them
without importing one another.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

#: A SKU as the API accepts it: letters, digits, ``.``, ``_`` and ``-``, at most 64.
SkuStr = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class StockLevel(msgspec.Struct, frozen=True):
    """One SKU's counters; always ``available + held + sold == on_hand``."""

    sku: str
    on_hand: int
    available: int
    held: int
    sold: int
