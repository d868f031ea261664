"""Money: integers of minor units, parsed from decimals without rounding."""

from __future__ import annotations

import msgspec
import pytest

from livesale.money import Money, format_amount, parse_decimal


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("19.90", "EUR", 1990),
        ("19.9", "EUR", 1990),
        ("19", "EUR", 1900),
        ("0.05", "usd", 5),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
    ],
)
def test_parse_decimal(text: str, currency: str, amount: int) -> None:
    """Decimal prices become minor units with the currency's own number of digits."""
    assert parse_decimal(text, currency) == Money(amount=amount, currency=currency.upper())


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("-1.00", "EUR"),
        ("19.999", "EUR"),
        ("1.5", "JPY"),
        ("abc", "EUR"),
        ("", "EUR"),
        ("1e3", "EUR"),
        ("10.00", "XYZ"),
        ("10.00", ""),
    ],
)
def test_parse_decimal_refuses(text: str, currency: str) -> None:
    """Negative, over-precise, malformed amounts and unknown currencies are refused."""
    with pytest.raises(ValueError):
        parse_decimal(text, currency)


def test_unknown_currency_fails_decoding() -> None:
    """A Money with an unknown currency does not decode."""
    with pytest.raises(msgspec.ValidationError, match="unknown currency"):
        msgspec.json.decode(b'{"amount": 1, "currency": "ABC"}', type=Money)


def test_format() -> None:
    """Formatting shows the currency's minor digits."""
    assert Money(amount=1990, currency="EUR").format() == "EUR 19.90"
    assert format_amount(1500, "JPY") == "1500"
    assert format_amount(5, "KWD") == "0.005"
