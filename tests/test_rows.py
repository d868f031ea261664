"""Counting a merchant file's rows before reading them one by one."""

from __future__ import annotations

from livesale.rows import count_rows


def test_count_rows_of_csv_and_json() -> None:
    """Data rows are counted, not the header, blank lines or newlines inside quotes; a JSON
    list counts its items, and what is not a list counts none."""
    assert count_rows('sku,title\nA,"two\nlines"\n\n  \nB,x\n') == 2
    assert count_rows("sku,title\n") == 0
    assert count_rows("") == 0
    assert count_rows('[{"sku": "A"}, {"sku": "B"}, 3]') == 3
    assert count_rows("[not json") == 0
