"""Rank helpers shared by objectives, populations and the predictor report (numpy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def rankdata(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span (as scipy's 'average')."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="mergesort")
    ranks = np.empty(len(array), dtype=float)
    sorted_values = array[order]
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN when either side is constant."""
    ra, rb = rankdata(a), rankdata(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def percentile(value: float, population: Sequence[float] | np.ndarray) -> float:
    """Where `value` falls in `population`, in (0, 100): the mid-rank of the value inserted into
    the population (Hazen position, 100 * (below + equal/2 + 1/2) / (n + 1)). Never exactly 0
    or 100, so it can serve as a positive "accuracy" in the MnasNet reward; NaN for NaN."""
    return percentile_sorted(value, np.sort(np.asarray(population, dtype=float)))


def percentile_sorted(value: float, ordered: np.ndarray, exclude_self: bool = False) -> float:
    """`percentile` against an already sorted array; `exclude_self`: `value` is one of its
    entries (a batch ranked against itself) and is not counted as its own neighbour."""
    if value is None or math.isnan(value):
        return math.nan
    below = int(np.searchsorted(ordered, value, side="left"))
    equal = int(np.searchsorted(ordered, value, side="right")) - below
    n = len(ordered)
    if exclude_self:
        equal, n = equal - 1, n - 1
    return 100.0 * (below + equal / 2 + 0.5) / (n + 1)


def batch_percentiles(values: Sequence[float | None]) -> list[float]:
    """Each value's percentile among the others of its batch; NaN/None entries come back NaN
    and are not part of the population."""
    clean = [math.nan if v is None else float(v) for v in values]
    ordered = np.sort(np.asarray([v for v in clean if not math.isnan(v)], dtype=float))
    return [percentile_sorted(v, ordered, exclude_self=True) for v in clean]
