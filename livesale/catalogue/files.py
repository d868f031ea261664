"""The catalogue's products file (CSV or JSON) read into :class:`ProductIn` rows.

Pure: takes text, returns products or :class:`~livesale.rows.FileProblems` listing every bad row
with its line number, so the CLI can print them all and import nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from livesale.catalogue.messages import ProductIn
from livesale.money import parse_decimal
from livesale.rows import BadRow, FileProblems, convert, csv_rows, is_json, json_rows, seen_check

PRODUCT_COLUMNS = ("sku", "title", "price", "currency", "description", "image_url", "stock")
#: How often (in rows) :func:`read_products` reports its progress.
PROGRESS_EVERY = 1000


def read_products(text: str, progress: Callable[[int], None] | None = None) -> list[ProductIn]:
    """Products from CSV (price a decimal like ``19.90``) or JSON (money objects).

    ``progress`` is told how many rows were read so far, every :data:`PROGRESS_EVERY` rows.
    """
    bad: list[BadRow] = []
    products: list[ProductIn] = []
    seen: dict[str, int] = {}
    if is_json(text):
        for n, (line, row) in enumerate(json_rows(text), start=1):
            _report(progress, n)
            product = convert(line, row, ProductIn, bad)
            if product is not None:
                seen_check(line, product.sku, seen, bad)
                products.append(product)
    else:
        for n, (line, row) in enumerate(csv_rows(text, ("sku", "title", "price", "currency")), 1):
            _report(progress, n)
            data: dict[str, Any] = {k: row.get(k, "") for k in ("sku", "title")}
            data["description"] = row.get("description", "")
            data["image_url"] = row.get("image_url", "")
            try:
                data["price"] = msgspec.to_builtins(
                    parse_decimal(row.get("price", ""), row.get("currency", ""))
                )
                stock = row.get("stock", "")
                if stock:
                    if not stock.isdigit():
                        raise ValueError(f"stock {stock!r} is not a whole number >= 0")
                    data["stock"] = int(stock)
            except ValueError as exc:
                bad.append(BadRow(line, str(exc)))
                continue
            product = convert(line, data, ProductIn, bad)
            if product is not None:
                seen_check(line, product.sku, seen, bad)
                products.append(product)
    if bad:
        raise FileProblems(bad)
    if not products:
        raise FileProblems([BadRow(1, "the file holds no products")])
    return products


def _report(progress: Callable[[int], None] | None, rows: int) -> None:
    if progress is not None and rows % PROGRESS_EVERY == 0:
        progress(rows)
