"""The few-label ranker as a served proxy: accuracy predicted by a model fitted on the archs the
operator labelled (`--label-set`), from the members' values and, on NB201, graph features."""

from __future__ import annotations

from collections.abc import Sequence

from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies.base import Composite

# Members chosen on the few-label evaluation's tuning seeds (docs/evaluation.md, "Few-label
# ranking"): the old four cheap ones (one batch each, params none) plus MeCo (one image) and
# AZ-NAS's expressivity and trainability (one shared pass) gained Kendall tau 0.03 at N = 100.
DEFAULT_MEMBERS = ("naswot", "synflow", "jacob_cov", "params", "meco", "az_expressivity",
                   "az_trainability")


def _no_percentiles(percentiles: Sequence[float]) -> float:
    # A fitted composite is served from its model (scoring/label_sets.py), never from here.
    raise FailedPrecondition("learned is predicted by its fitted model, not combined from "
                             "percentiles")


PROXY = Composite(
    name="learned",
    combine=_no_percentiles,
    unit="accuracy",
    transform="gradient boosting blended with a linear pairwise ranker on the members' values "
              "(and NB201 graph features), fitted on the server's label set; the labelled "
              "accuracies' quantile at the predicted rank",
    description=(
        "Few-label ranking: predicted accuracy (higher is better) from a model fitted on the "
        "archs with known accuracy that the operator registered for the space "
        "(--label-set). extra proxies=a,b,c picks the members used as features (default "
        f"{','.join(DEFAULT_MEMBERS)}); the other settings apply to each member."),
    reference="Kadlecová et al., Surprisingly Strong Performance Prediction with Neural Graph "
              "Features (ICML 2024)",
    default_members=DEFAULT_MEMBERS,
    fitted=True,
)
