"""The catalogue's products file: every bad row reported with its line number."""

from __future__ import annotations

import pytest

from livesale.catalogue.files import read_products
from livesale.rows import FileProblems


def test_csv_products() -> None:
    """CSV rows become products, quoted commas and all."""
    products = read_products(
        "sku,title,price,currency,description,image_url,stock\n"
        'A-1,"Lipstick, red",19.90,EUR,"Soft, matte",,7\n'
        "\n"
        "B-2,Serum,5,USD,,https://shop.example/b.png,\n"
    )
    assert [(p.sku, p.title, p.price.amount, p.stock) for p in products] == [
        ("A-1", "Lipstick, red", 1990, 7),
        ("B-2", "Serum", 500, None),
    ]


def test_missing_columns_named() -> None:
    """A header without the required columns is one problem on line 1."""
    with pytest.raises(FileProblems) as caught:
        read_products("sku,title\nA,B\n")
    assert [str(r) for r in caught.value.rows] == [
        "line 1: header lacks column(s): price, currency"
    ]


def test_json_products_report_positions() -> None:
    """JSON rows are reported by their position in the list."""
    with pytest.raises(FileProblems) as caught:
        read_products(
            '[{"sku": "A", "title": "t", "price": {"amount": 1, "currency": "EUR"}},'
            ' {"sku": "B", "title": "t"}]'
        )
    assert [r.line for r in caught.value.rows] == [2]


def test_progress_is_told_rows_read() -> None:
    """A long file tells its reader how far it got, every thousand rows."""
    text = "sku,title,price,currency\n" + "".join(f"S-{n},T,1.00,EUR\n" for n in range(2500))
    seen: list[int] = []
    assert len(read_products(text, seen.append)) == 2500
    assert seen == [1000, 2000]
