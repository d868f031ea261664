"""Statistics shared by the benchmarks, so that their figures mean the same thing.

A benchmark imports it as ``from _stats import ...`` (``python scripts/bench_x.py`` puts
``scripts/`` first on ``sys.path``); the tests import ``scripts._stats``.

Percentiles use **linear interpolation between the closest ranks**, numpy's default
(``method="linear"``, Hyndman & Fan's type 7) and ``statistics.quantiles(method="inclusive")``:
for ``n`` sorted values ``x[0] .. x[n-1]`` the ``p``-th percentile sits at the fractional index
``h = (n - 1) * p / 100`` and is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] -
x[floor(h)])``. So p0 is the minimum, p100 the maximum and p50 the median, and a p99 of fewer
than 101 samples lies between the two largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], pct: float) -> float:
    """The ``pct``-th percentile (0 to 100) of ``values`` by linear interpolation between the
    closest ranks (see the module docstring); NaN when there are no values."""
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, not {pct}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    h = (len(ordered) - 1) * pct / 100
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (h - low) * (ordered[high] - ordered[low]))


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of ``values``; NaN when there are none."""
    return math.fsum(values) / len(values) if values else math.nan


def summary(
    values: Sequence[float],
    *,
    pcts: Sequence[float] = (50, 99),
    scale: float = 1.0,
    unit: str = "ms",
    digits: int = 1,
    largest: bool = False,
) -> str:
    """One line such as ``p50 12.3 ms  p99 45.6 ms  max 50.1 ms`` for ``values`` times
    ``scale`` (1000 for seconds shown as ms); ``largest`` adds the maximum."""
    parts = [f"p{pct:g} {percentile(values, pct) * scale:.{digits}f} {unit}" for pct in pcts]
    if largest:
        top = max(values) * scale if values else math.nan
        parts.append(f"max {top:.{digits}f} {unit}")
    return "  ".join(parts)
