"""AZ-NAS progressivity (Lee & Ham, CVPR 2024): the smallest gain in expressivity from one block
to the next."""

from __future__ import annotations

from edgescore.server.proxies import _az
from edgescore.server.proxies.base import Proxy, ProxyInput


def compute(inp: ProxyInput) -> float:
    return _az.progressivity_value(inp.shared)


PROXY = Proxy(
    name="az_progressivity",
    compute=compute,
    unit="nats (difference of spectral entropies)",
    transform="none",
    description="AZ-NAS progressivity s^P: with E_l the spectral entropy of block l's feature "
                "map (as az_expressivity, blocks in forward order, the stem first), value = "
                "min over l of E_{l+1} - E_l, the smallest step (negative where a block loses "
                "expressivity). Same pass and protocol as az_expressivity (shared pass 'az_nas'). "
                "Not defined for transformers (the reference's AutoFormer search does not use "
                "it): FAILED_PRECONDITION on the vit space.",
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024; cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/"
              "compute_az_nas_score.py (np.min(expressivity_scores[1:] - "
              "expressivity_scores[:-1])).",
    **_az.PASS_PROTOCOL,
)
