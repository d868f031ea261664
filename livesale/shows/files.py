"""A show's line-up file (CSV or JSON rows ``sku[,price][,limit_per_buyer]``), read into
:class:`LineupItemIn` rows in show order, every bad row reported with its line number."""

from __future__ import annotations

from typing import Any

import msgspec

from livesale.money import parse_decimal
from livesale.rows import BadRow, FileProblems, convert, csv_rows, is_json, json_rows, seen_check
from livesale.shows.messages import LineupItemIn

LINEUP_COLUMNS = ("sku", "price", "limit_per_buyer")


def read_lineup(text: str, currencies: dict[str, str]) -> list[LineupItemIn]:
    """Line-up rows ``sku[,price][,limit_per_buyer]`` in show order.

    ``currencies`` maps each known SKU to its currency, so a CSV price ``9.90`` becomes money in
    the product's currency; an unknown SKU is a bad row.
    """
    bad: list[BadRow] = []
    items: list[LineupItemIn] = []
    seen: dict[str, int] = {}
    rows: list[tuple[int, Any]]
    if is_json(text):
        rows = json_rows(text)
    else:
        rows = list(csv_rows(text, ("sku",)))
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
        item = convert(line, data, LineupItemIn, bad)
        if item is not None:
            seen_check(line, item.sku, seen, bad)
            items.append(item)
    if bad:
        raise FileProblems(bad)
    return items
