"""Stock rules, pure: no I/O, no ``await``.

The ``stock_batch`` script (``livesale/lua/stock_batch.lua``) performs these changes atomically
in Redis, for every row of a change at once; ``tests/orders/test_state.py`` runs one table of
cases against both. Every function returns the new counters or raises, leaving its input
untouched.
"""

from __future__ import annotations

from livesale.errors import StockConflict, ValidationFailed
from livesale.values import StockLevel


def check(level: StockLevel) -> None:
    """Raise ``AssertionError`` unless ``available + held + sold == on_hand``, all >= 0."""
    assert level.available >= 0 and level.held >= 0 and level.sold >= 0, level
    assert level.available + level.held + level.sold == level.on_hand, level


def set_on_hand(level: StockLevel, on_hand: int) -> StockLevel:
    """Stock counted on the shelf is ``on_hand``; held and sold units stay as they are."""
    if on_hand < 0:
        raise ValidationFailed("on_hand must be >= 0")
    return _move_on_hand(level, on_hand)


def adjust(level: StockLevel, delta: int) -> StockLevel:
    """Add ``delta`` units to on-hand (negative removes); never below what is held or sold."""
    return _move_on_hand(level, level.on_hand + delta)


def conflict(level: StockLevel, on_hand: int) -> StockConflict:
    """The refusal of setting ``level``'s on-hand to ``on_hand``, below what is held or sold."""
    return StockConflict(
        f"on_hand {on_hand} would be below the {level.held} held and {level.sold} sold",
        on_hand=level.on_hand,
        held=level.held,
        sold=level.sold,
    )


def _move_on_hand(level: StockLevel, on_hand: int) -> StockLevel:
    committed = level.held + level.sold
    if on_hand < committed:
        raise conflict(level, on_hand)
    return StockLevel(level.sku, on_hand, on_hand - committed, level.held, level.sold)
