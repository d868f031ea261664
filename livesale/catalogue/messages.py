"""Wire shapes of the catalogue and stock API (msgspec Structs)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from livesale.money import Money
from livesale.values import SkuStr, StockLevel

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
ImageUrl = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^(|https?://\S+|/\S*)$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Delta = Annotated[int, msgspec.Meta(ge=-10_000_000, le=10_000_000)]


class ProductIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/products``: create or replace one product; ``stock`` sets on-hand too."""

    sku: SkuStr
    title: Title
    price: Money
    description: Description = ""
    image_url: ImageUrl = ""
    stock: Count | None = None


class Product(msgspec.Struct, frozen=True):
    sku: str
    title: str
    description: str
    image_url: str
    price: Money
    stock: StockLevel | None = None


class ImportResult(msgspec.Struct, frozen=True):
    imported: int
    skus: list[str]


class ImportLimits(msgspec.Struct, frozen=True):
    """What one import may carry: products (all or nothing) and bytes of request body."""

    max_rows: int
    max_body_bytes: int


class RowError(msgspec.Struct, frozen=True):
    """One refused row of an import: its index (0-based) in the request and why."""

    index: int
    sku: str
    reason: str


class StockSet(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    on_hand: Count
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "set"


class StockAdjust(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    delta: Delta
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "adjust"


class LedgerEntry(msgspec.Struct, frozen=True):
    at: float
    actor: str
    delta: int
    on_hand: int
    reason: str
