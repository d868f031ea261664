"""A show's line-up file: rows in show order, every bad row reported with its line number."""

from __future__ import annotations

import pytest

from livesale.rows import FileProblems
from livesale.shows.files import read_lineup


def test_lineup_rows() -> None:
    """Line-up CSV prices take the product's currency; limits are whole numbers."""
    items = read_lineup("sku,price,limit_per_buyer\nA,9.90,2\nB,,\n", {"A": "EUR", "B": "JPY"})
    assert [(i.sku, i.price.amount if i.price else None, i.limit_per_buyer) for i in items] == [
        ("A", 990, 2),
        ("B", None, None),
    ]


def test_lineup_bad_rows() -> None:
    """Unknown, repeated and malformed line-up rows are all reported."""
    with pytest.raises(FileProblems) as caught:
        read_lineup(
            "sku,price,limit_per_buyer\nA,,\nZ,,\nA,,\nA-2,x,\nA-3,,0\n",
            {"A": "EUR", "A-2": "EUR", "A-3": "EUR"},
        )
    assert [r.line for r in caught.value.rows] == [3, 4, 5, 6]
