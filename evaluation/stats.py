"""Rank correlations: Spearman's rho and Kendall's tau-b, both with ties handled.

Written out here (numpy only) rather than pulled from scipy: the server extra stays light, and the
two definitions are short. Both return NaN when undefined (fewer than two pairs, or one side
constant), never a misleading 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("values must be finite: drop missing pairs before correlating")
    return a, b


def rankdata(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span ("average" method)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    # Start index of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], len(v)]
    mean_rank = (starts + ends - 1) / 2.0 + 1.0  # mean of positions start..end-1, 1-based
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y)
    if len(a) < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / denom if denom > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (the tie-correct definition)."""
    a, b = _pair(x, y)
    return pearson(rankdata(a), rankdata(b))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y).

    O(n^2) pair signs, one row at a time: 5,000 archs take well under a second, and the
    definition stays visible.
    """
    a, b = _pair(x, y)
    n = len(a)
    if n < 2:
        return math.nan
    score = untied_x = untied_y = 0
    for i in range(n - 1):
        sx = np.sign(a[i + 1:] - a[i])
        sy = np.sign(b[i + 1:] - b[i])
        score += int(sx @ sy)  # +1 concordant, -1 discordant, 0 tied on either side
        untied_x += int(np.count_nonzero(sx))
        untied_y += int(np.count_nonzero(sy))
    denom = math.sqrt(untied_x * untied_y)
    return score / denom if denom > 0 else math.nan


def paired(x: Sequence[float | None], y: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """The pairs where both values are present and finite."""
    keep = [(float(a), float(b)) for a, b in zip(x, y)
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    return [a for a, _ in keep], [b for _, b in keep]


def spearman_ci(rho: float, n: int, z_crit: float = 1.959964) -> tuple[float, float]:
    """Approximate 95% interval of Spearman's rho by Fisher's z with the Fieller-Hartley-Pearson
    standard error 1.06 / sqrt(n - 3): on a sample of 20 archs it spans about +-0.4, which is what
    a comparison with a figure over 15,625 archs has to be read against."""
    if n < 4 or not math.isfinite(rho):
        return math.nan, math.nan
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = z_crit * 1.06 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)
