"""The geometric mean of the members' percentiles."""

from __future__ import annotations

from edgescore.server.proxies import _aggregate
from edgescore.server.proxies.base import Composite

DEFAULT_MEMBERS = _aggregate.LABEL_FREE_MEMBERS

PROXY = Composite(
    name="geo_mean",
    combine=_aggregate.geometric_mean,
    unit="percentile",
    transform="geometric mean of the members' percentiles in the space's reference population",
    description=(
        "Label-free aggregation: the geometric mean of the chosen proxies' percentiles in the "
        "space's reference population, in (0, 100). It orders archs as log_rank does, on the "
        f"percentile scale. extra proxies=a,b,c picks the members (default "
        f"{','.join(DEFAULT_MEMBERS)})."),
    reference="Lee & Ham, AZ-NAS (CVPR 2024), rank aggregation; geometric mean of ranks",
    default_members=DEFAULT_MEMBERS,
)
