"""AZ-NAS (Lee & Ham, CVPR 2024): its four proxies joined by its non-linear rank aggregation."""

from __future__ import annotations

from edgescore.server.proxies import _aggregate
from edgescore.server.proxies.base import Composite

DEFAULT_MEMBERS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")

PROXY = Composite(
    name="az_nas",
    combine=_aggregate.log_rank_sum,
    unit="sum of log(percentile/100)",
    transform="sum of log(p/100) over the members' percentiles in the space's reference "
              "population",
    description=(
        "AZ-NAS: sum over its four proxies (az_expressivity, az_progressivity, az_trainability, "
        "az_complexity) of log(p/100), p each one's percentile in the space's reference "
        "population; at most 0, higher is better. The paper's aggregate is sum log(rank/m) over "
        "the m candidates being ranked; here each rank is taken against the reference "
        "population instead (docs/proxies.md, az_nas). On vit ask extra "
        "proxies=az_expressivity,az_trainability,az_complexity: AZ-NAS's AutoFormer search has "
        "no progressivity."),
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024 (non-linear ranking aggregation); cvlab-yonsei/AZ-NAS "
              "NB201/tss_general.ipynb (np.log(stats.rankdata(x) / l) summed over the four)",
    default_members=DEFAULT_MEMBERS,
)
