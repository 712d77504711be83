"""Rank correlations of an evaluation's paired values: Spearman's rho and Kendall's tau-b (ties
handled; from scoring/ranks.py, which takes them from scipy.stats), with the checks an evaluation
wants first, and Spearman's confidence interval.

Both correlations return NaN when undefined (fewer than two pairs, or one side constant), never a
misleading 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgescore.server.scoring import ranks
from edgescore.server.scoring.ranks import rankdata

__all__ = ["kendall_tau", "paired", "rankdata", "spearman", "spearman_ci"]


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("values must be finite: drop missing pairs before correlating")
    return a, b


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (the tie-correct definition)."""
    return ranks.spearman(*_pair(x, y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y)."""
    return ranks.kendall_tau(*_pair(x, y))


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
