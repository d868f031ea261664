"""Catalogue and line-up files (CSV or JSON) read into wire Structs, every bad row reported.

Pure: takes text, returns rows or the complete list of problems with line numbers, so the CLI
can print them all and import nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from livesale.orders.messages import ProductIn
from livesale.orders.money import parse_decimal
from livesale.room.messages import LineupItemIn

T = TypeVar("T")

PRODUCT_COLUMNS = ("sku", "title", "price", "currency", "description", "image_url", "stock")
LINEUP_COLUMNS = ("sku", "price", "limit_per_buyer")


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class FileProblems(Exception):
    """The file has bad rows; :attr:`rows` lists every one of them."""

    def __init__(self, rows: list[BadRow]) -> None:
        super().__init__(f"{len(rows)} bad row(s)")
        self.rows = rows


def _is_json(text: str) -> bool:
    return text.lstrip().startswith("[")


def _csv_rows(text: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise FileProblems([BadRow(1, f"header lacks column(s): {', '.join(missing)}")])
    reader.fieldnames = header
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def _json_rows(text: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FileProblems([BadRow(getattr(exc, "lineno", 1), f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, list):
        raise FileProblems([BadRow(1, "a JSON file must hold a list of rows")])
    # JSON rows are numbered by position (1-based) in place of a line number.
    return [(n, row) for n, row in enumerate(data, start=1)]


def _convert(line: int, data: Any, kind: type[T], bad: list[BadRow]) -> T | None:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        bad.append(BadRow(line, str(exc)))
        return None


def _seen_check(line: int, sku: str, seen: dict[str, int], bad: list[BadRow]) -> None:
    if sku in seen:
        bad.append(BadRow(line, f"SKU {sku!r} repeats line {seen[sku]}"))
    else:
        seen[sku] = line


def read_products(text: str) -> list[ProductIn]:
    """Products from CSV (price a decimal like ``19.90``) or JSON (money objects)."""
    bad: list[BadRow] = []
    products: list[ProductIn] = []
    seen: dict[str, int] = {}
    if _is_json(text):
        for line, row in _json_rows(text):
            product = _convert(line, row, ProductIn, bad)
            if product is not None:
                _seen_check(line, product.sku, seen, bad)
                products.append(product)
    else:
        for line, row in _csv_rows(text, ("sku", "title", "price", "currency")):
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
            product = _convert(line, data, ProductIn, bad)
            if product is not None:
                _seen_check(line, product.sku, seen, bad)
                products.append(product)
    if bad:
        raise FileProblems(bad)
    if not products:
        raise FileProblems([BadRow(1, "the file holds no products")])
    return products


def read_lineup(text: str, currencies: dict[str, str]) -> list[LineupItemIn]:
    """Line-up rows ``sku[,price][,limit_per_buyer]`` in show order.

    ``currencies`` maps each known SKU to its currency, so a CSV price ``9.90`` becomes money in
    the product's currency; an unknown SKU is a bad row.
    """
    bad: list[BadRow] = []
    items: list[LineupItemIn] = []
    seen: dict[str, int] = {}
    rows: list[tuple[int, Any]]
    if _is_json(text):
        rows = _json_rows(text)
    else:
        rows = list(_csv_rows(text, ("sku",)))
    for line, row in rows:
        if not isinstance(row, dict):
            bad.append(BadRow(line, "a row must be an object with at least a sku"))
            continue
        sku = str(row.get("sku", "")).strip()
        data: dict[str, Any] = {"sku": sku}
        price = row.get("price")
        limit = row.get("limit_per_buyer")
        try:
            if sku and sku not in currencies:
                raise ValueError(f"unknown SKU {sku!r}")
            if isinstance(price, dict):
                data["price"] = price
            elif price not in (None, ""):
                data["price"] = msgspec.to_builtins(parse_decimal(str(price), currencies[sku]))
            if limit not in (None, ""):
                data["limit_per_buyer"] = int(limit) if isinstance(limit, str) else limit
        except (ValueError, KeyError) as exc:
            bad.append(BadRow(line, str(exc).strip("'\"")))
            continue
        item = _convert(line, data, LineupItemIn, bad)
        if item is not None:
            _seen_check(line, item.sku, seen, bad)
            items.append(item)
    if bad:
        raise FileProblems(bad)
    return items
