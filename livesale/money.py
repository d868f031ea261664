"""Money: an integer of minor units and an ISO 4217 currency code. Never a float."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

#: ISO 4217 codes accepted, with the number of minor-unit digits (the standard's "E" column).
CURRENCIES: dict[str, int] = {
    **dict.fromkeys(
        "AED ARS AUD BDT BGN BRL CAD CHF CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR KES "
        "MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN RON RSD RUB SAR SEK SGD THB TRY TWD UAH USD "
        "VND ZAR".split(),
        2,
    ),
    **dict.fromkeys("CLP ISK JPY KRW PYG UGX XAF XOF".split(), 0),
    **dict.fromkeys("BHD JOD KWD OMR TND".split(), 3),
}
CURRENCIES["VND"] = 0
CURRENCIES["IDR"] = 2

Amount = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
#: The document lists the codes accepted; an unknown one is refused by :class:`Money` itself,
#: with a message that says so.
Currency = Annotated[
    str, msgspec.Meta(pattern="^[A-Z]{3}$", extra_json_schema={"enum": sorted(CURRENCIES)})
]

_DECIMAL = re.compile(r"^(\d{1,12})(?:\.(\d+))?$")


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``{"amount": 1999, "currency": "EUR"}`` is EUR 19.99."""

    amount: Amount
    currency: Currency

    def __post_init__(self) -> None:
        if self.currency not in CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r}")

    def format(self) -> str:
        """``EUR 19.99``: the amount with its currency's minor digits."""
        return f"{self.currency} {format_amount(self.amount, self.currency)}"


#: A sum of amounts (a unit price times up to 99 units, a show's takings): past one amount's
#: bound, within the integers JSON carries exactly.
SumAmount = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]


class Total(Money, frozen=True, forbid_unknown_fields=True):
    """A sum of money (``total``, ``refunded``, a show's takings): :class:`Money`'s shape, with
    a larger bound, since a price at the largest amount times a quantity goes past it."""

    amount: SumAmount


def format_amount(amount: int, currency: str) -> str:
    digits = CURRENCIES.get(currency, 2)
    if digits == 0:
        return str(amount)
    whole, frac = divmod(amount, 10**digits)
    return f"{whole}.{frac:0{digits}d}"


def parse_decimal(text: str, currency: str) -> Money:
    """``parse_decimal("19.90", "EUR") == Money(1990, "EUR")``.

    Raises ValueError for an unknown currency, a negative or malformed number, or more decimals
    than the currency has minor units (``19.999`` EUR), so nothing is silently rounded.
    """
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        raise ValueError(f"unknown currency {currency!r}")
    match = _DECIMAL.match(text.strip())
    if match is None:
        raise ValueError(f"price {text!r} is not a non-negative decimal like 19.90")
    whole, frac = match.group(1), match.group(2) or ""
    digits = CURRENCIES[currency]
    if len(frac) > digits:
        raise ValueError(f"price {text!r} has more than {digits} decimals for {currency}")
    return Money(
        amount=int(whole) * 10**digits + int(frac.ljust(digits, "0") or 0), currency=currency
    )
