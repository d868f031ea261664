"""Reading rows of a merchant's CSV or JSON file, every bad row reported with its line number.

Pure: takes text, yields rows or raises :class:`FileProblems` listing every problem, so the CLI
can print them all and import nothing. The catalogue's products file and a show's line-up file
(:mod:`livesale.catalogue.files`, :mod:`livesale.shows.files`) are read with these helpers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


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


def is_json(text: str) -> bool:
    return text.lstrip().startswith("[")


def csv_rows(text: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
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


def count_rows(text: str) -> int:
    """How many rows the CSV or JSON ``text`` holds (blank CSV lines aside), read quickly: to
    refuse a file too large before the rows are checked one by one."""
    if is_json(text):
        try:
            data = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return 0  # the full read reports why
        return len(data) if isinstance(data, list) else 0
    rows = csv.reader(io.StringIO(text))
    return max(0, sum(1 for row in rows if any(cell.strip() for cell in row)) - 1)


def json_rows(text: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FileProblems([BadRow(getattr(exc, "lineno", 1), f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, list):
        raise FileProblems([BadRow(1, "a JSON file must hold a list of rows")])
    # JSON rows are numbered by position (1-based) in place of a line number.
    return [(n, row) for n, row in enumerate(data, start=1)]


def convert(line: int, data: Any, kind: type[T], bad: list[BadRow]) -> T | None:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        bad.append(BadRow(line, str(exc)))
        return None


def seen_check(line: int, sku: str, seen: dict[str, int], bad: list[BadRow]) -> None:
    if sku in seen:
        bad.append(BadRow(line, f"SKU {sku!r} repeats line {seen[sku]}"))
    else:
        seen[sku] = line
