"""Ranks, rank correlations and percentiles, for objectives, populations, the predictor's report
and the offline evaluation.

Ranks and correlations are scipy.stats' (average ranks for ties, Spearman's rho, Kendall's tau-b);
the helpers here only fix what "undefined" gives: NaN, without a warning, when there are fewer
than two pairs or one side is constant (a misleading 0 would read as "no correlation").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["kendall_tau", "percentile", "percentile_sorted", "rankdata", "spearman"]


def rankdata(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    return stats.rankdata(np.asarray(values, dtype=np.float64), method="average")


def _defined(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a rank correlation of `a` and `b` exists: two pairs or more, neither side
    constant. A NaN entry is not constant: it makes the correlation NaN in scipy itself."""
    return len(a) >= 2 and not (np.all(a == a[0]) or np.all(b == b[0]))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (Pearson's r of the average ranks); NaN when undefined."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(stats.spearmanr(x, y).statistic) if _defined(x, y) else math.nan


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (ties on either side handled); NaN when undefined."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(stats.kendalltau(x, y, variant="b").statistic) if _defined(x, y) else math.nan


def percentile(value: float, population: Sequence[float] | np.ndarray) -> float:
    """Where `value` falls in `population`, in (0, 100): the mid-rank of the value inserted into
    the population (Hazen position, 100 * (below + equal/2 + 1/2) / (n + 1)). Never exactly 0
    or 100, so it can serve as a positive "accuracy" in the MnasNet reward; NaN for NaN."""
    return percentile_sorted(value, np.sort(np.asarray(population, dtype=float)))


def percentile_sorted(value: float, ordered: np.ndarray) -> float:
    """`percentile` against an already sorted array."""
    if value is None or math.isnan(value):
        return math.nan
    below = int(np.searchsorted(ordered, value, side="left"))
    equal = int(np.searchsorted(ordered, value, side="right")) - below
    return 100.0 * (below + equal / 2 + 0.5) / (len(ordered) + 1)
