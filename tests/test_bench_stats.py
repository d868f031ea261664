"""The benchmarks' one percentile definition: linear interpolation between closest ranks."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from scripts._stats import mean, percentile, summary


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 25, 1.75),
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 100, 4.0),
        ([4, 1, 3, 2], 75, 3.25),  # order of the input does not matter
        ([7], 99, 7.0),
        ([10, 20], 99, 19.9),
        (list(range(1, 101)), 99, 99.01),
        (list(range(1, 102)), 99, 100.0),  # 101 values: p99 is exactly a sample
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[int], pct: float, expected: float
) -> None:
    """p = x[h] interpolated at h = (n - 1) * pct / 100, as numpy's default computes it."""
    assert percentile(values, pct) == pytest.approx(expected, abs=1e-9)


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    """Every integer percentile agrees with ``statistics.quantiles(method="inclusive")``."""
    noise = random.Random(1)
    values = [noise.expovariate(1 / 20) for _ in range(257)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for pct, cut in enumerate(cuts, 1):
        assert percentile(values, pct) == pytest.approx(cut, rel=1e-12)
    assert percentile(values, 50) == pytest.approx(statistics.median(values), rel=1e-12)


def test_no_values_give_nan_and_a_bad_percentile_is_refused() -> None:
    """No samples is NaN (never a crash mid-report); a percentile outside 0..100 is an error."""
    assert math.isnan(percentile([], 50))
    assert math.isnan(mean([]))
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], 0.99 - 1)


def test_mean_and_summary_line() -> None:
    """The summary line scales seconds to ms and names each percentile it shows."""
    assert mean([1, 2, 3, 4]) == 2.5
    seconds = [0.001 * n for n in range(1, 101)]
    assert summary(seconds, scale=1000) == "p50 50.5 ms  p99 99.0 ms"
    assert (
        summary(seconds, pcts=(25, 95), scale=1000, digits=0, largest=True)
        == "p25 26 ms  p95 95 ms  max 100 ms"
    )
