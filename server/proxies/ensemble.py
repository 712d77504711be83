"""The rank-average ensemble of the zero-shot NAS survey: the mean of the members' percentiles."""

from __future__ import annotations

from edgescore.server.proxies import _aggregate
from edgescore.server.proxies.base import Composite

DEFAULT_MEMBERS = ("synflow", "jacob_cov", "naswot")

PROXY = Composite(
    name="ensemble",
    combine=_aggregate.mean,
    unit="percentile",
    transform="mean of the members' percentiles in the space's reference population",
    description=(
        "Rank-average ensemble: the mean of the chosen proxies' percentiles in the space's "
        "reference population, in (0, 100). extra proxies=a,b,c picks the members (default "
        f"{','.join(DEFAULT_MEMBERS)}); the other settings apply to each member."),
    reference="Li et al., zero-shot NAS survey (TPAMI 2024): proxy ensembles",
    default_members=DEFAULT_MEMBERS,
)
