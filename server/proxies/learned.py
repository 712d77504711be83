"""The few-label ranker as a served proxy: accuracy predicted by a model fitted on the archs the
operator labelled (`--label-set`), from the members' values and, on NB201, graph features."""

from __future__ import annotations

from collections.abc import Sequence

from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies.base import Composite

# Cheap members that ranked as well as all twelve evaluated proxies together (docs/evaluation.md,
# "Few-label ranking"): NASWOT, SynFlow and Jacobian covariance need one batch each, params none.
DEFAULT_MEMBERS = ("naswot", "synflow", "jacob_cov", "params")


def _no_percentiles(percentiles: Sequence[float]) -> float:
    # A fitted composite is served from its model (scoring/label_sets.py), never from here.
    raise FailedPrecondition("learned is predicted by its fitted model, not combined from "
                             "percentiles")


PROXY = Composite(
    name="learned",
    combine=_no_percentiles,
    unit="accuracy",
    transform="gradient boosting on the members' values (and NB201 graph features), fitted on "
              "the server's label set; the labelled accuracies' quantile at the predicted rank",
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
