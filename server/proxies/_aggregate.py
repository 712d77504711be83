"""How label-free composites join their members' percentiles (each in (0, 100), the member's
place in the space's reference population).

The log-rank sum is AZ-NAS's non-linear aggregation: sum over members of log(rank / N), which
with percentiles is sum of log(p / 100). A member ranked near the bottom pulls the sum down far
more than one near the top pushes it up, so an arch must be good on every member. It orders archs
exactly as the geometric mean of the percentiles does (one is a monotone function of the other
for a fixed member count); the geometric mean is served on the percentile scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The default members of `log_rank` and `geo_mean`: on the NB201 dev split (edgescore eval
# aggregate --splits 11 over 945 CIFAR-10 archs), the 2-5 member subset of the 14 proxies that read
# no class labels chosen most often on a random half (7 of 11 splits; the choice scores Kendall
# tau 0.785 on the halves it never saw). Label-free members because a served aggregate also runs
# where the only labels are stand-ins (docs/evaluation.md, "Label-free aggregation").
LABEL_FREE_MEMBERS = ("synflow", "jacob_cov", "meco", "az_expressivity", "az_trainability")


def mean(percentiles: Sequence[float]) -> float:
    """The rank average."""
    return float(sum(percentiles) / len(percentiles))


def log_rank_sum(percentiles: Sequence[float]) -> float:
    """AZ-NAS's aggregate: sum of log(p / 100), at most 0."""
    return float(sum(math.log(p / 100.0) for p in percentiles))


def geometric_mean(percentiles: Sequence[float]) -> float:
    """The geometric mean of the percentiles, in (0, 100)."""
    return float(math.exp(sum(math.log(p) for p in percentiles) / len(percentiles)))
