"""VKDNW_agg (Tybl & Neumann, CVPR 2025, Eq. 15): log-rank aggregation of VKDNW_single with
Jacov, AZ-NAS's expressivity and trainability, and FLOPs."""

from __future__ import annotations

from edgescore.server.proxies import _aggregate
from edgescore.server.proxies.base import Composite

# The paper's V, J, E, T, F. az_expressivity and az_trainability are AZ-NAS's components.
DEFAULT_MEMBERS = ("vkdnw_single", "jacob_cov", "az_expressivity", "az_trainability", "flops")

PROXY = Composite(
    name="vkdnw_agg",
    combine=_aggregate.log_rank_sum,
    unit="sum of log(percentile/100)",
    transform="sum of log(p/100) over the members' percentiles in the space's reference "
              "population",
    description=(
        "Label-free VKDNW_agg: sum over the members of log(p/100), p each member's percentile in "
        "the space's reference population (the paper's log of the product of ranks / N, with "
        "the population standing in for the candidate set); at most 0, higher is better. "
        f"Default members {','.join(DEFAULT_MEMBERS)} (the paper's V, J, E, T, F); extra "
        "proxies=a,b,c picks others."),
    reference="Tybl & Neumann, 'Training-free Neural Architecture Search through Variance of "
              "Knowledge of Deep Network Weights', CVPR 2025 (Sec. V-A, Eq. 15); the same "
              "aggregation in ondratybl/VKDNW ImageNet_MBV2/evolution_search_vkdnw.py.",
    default_members=DEFAULT_MEMBERS,
)
