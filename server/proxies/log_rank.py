"""AZ-NAS-style non-linear rank aggregation over any members: sum of log(percentile / 100)."""

from __future__ import annotations

from edgescore.server.proxies import _aggregate
from edgescore.server.proxies.base import Composite

DEFAULT_MEMBERS = _aggregate.LABEL_FREE_MEMBERS

PROXY = Composite(
    name="log_rank",
    combine=_aggregate.log_rank_sum,
    unit="sum of log(percentile/100)",
    transform="sum of log(p/100) over the members' percentiles in the space's reference "
              "population",
    description=(
        "Label-free log-rank aggregation (AZ-NAS's): the sum over the chosen proxies of "
        "log(p/100), p each one's percentile in the space's reference population; at most 0, "
        "higher is better. A low rank on any member weighs more than a high rank on another. "
        f"extra proxies=a,b,c picks the members (default {','.join(DEFAULT_MEMBERS)})."),
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024 (non-linear ranking aggregation)",
    default_members=DEFAULT_MEMBERS,
)
