"""The merchant's tracking file: which parcels left, with which carrier and tracking number.

A CSV with the columns ``parcel_id``, ``carrier``, ``tracking_number`` (any others are
ignored, so the parcels export itself, with those two columns filled in, is one). A row whose
carrier and tracking number are both empty is a parcel not shipped yet and is skipped. Every
bad row is reported with its line number and nothing is sent.
"""

from __future__ import annotations

from livesale.orders.messages import ShipIn
from livesale.rows import BadRow, FileProblems, convert, csv_rows

COLUMNS = ("parcel_id", "carrier", "tracking_number")
#: How a cell starts that a spreadsheet would read as a formula (or whose start it hides): the
#: exports write such a cell with a leading apostrophe (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet opens as text."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def from_cell(text: str) -> str:
    """A cell as it was before :func:`csv_cell` guarded it."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def read_tracking(text: str) -> list[ShipIn]:
    """The shipments of a tracking file; :class:`FileProblems` lists every bad row."""
    bad: list[BadRow] = []
    found: list[ShipIn] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, COLUMNS):
        # A cell the export guarded against spreadsheet formulas comes back as it was.
        values = {c: from_cell(row.get(c, "")) for c in COLUMNS}
        if not values["carrier"] and not values["tracking_number"]:
            continue
        parcel = values["parcel_id"]
        if parcel in seen:
            bad.append(BadRow(line, f"parcel {parcel!r} repeats line {seen[parcel]}"))
            continue
        seen[parcel] = line
        for column in COLUMNS:
            if not values[column]:
                bad.append(BadRow(line, f"{column} is empty"))
                break
        else:
            item = convert(line, values, ShipIn, bad)
            if item is not None:
                found.append(item)
    if bad:
        raise FileProblems(bad)
    return found
