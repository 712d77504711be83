"""VKDNW_single (Tybl & Neumann, CVPR 2025, Eq. 12): network size plus the VKDNW entropy."""

from __future__ import annotations

from edgescore.server.proxies import _vkdnw
from edgescore.server.proxies.base import Proxy, ProxyInput
from edgescore.server.proxies.vkdnw import PROXY as VKDNW
from edgescore.server.proxies.vkdnw import entropy


def size_plus_entropy(inp: ProxyInput) -> float:
    factors: _vkdnw.FisherFactors = inp.shared
    return factors.param_tensors + entropy(inp)


PROXY = Proxy(
    name="vkdnw_single",
    compute=size_plus_entropy,
    unit="tensors + nats",
    transform="none",
    description="VKDNW_single = aleph + VKDNW: aleph = the number of parameter tensors of the "
                "network (len(named_parameters()), the reference's vkdnw_dim: on NB201 three "
                "per cell conv op, conv + BN weight + BN bias), VKDNW = the vkdnw entropy, in "
                "(0, log 9] < 3. Ranks by size first, then by VKDNW among equal sizes. Same "
                "protocol and settings as vkdnw, from the same shared pass.",
    reference="Tybl & Neumann, CVPR 2025 (Eq. 12, the paper's single-proxy ranking); "
              "ondratybl/VKDNW compute_vkdnw_score.py (vkdnw_dim + vkdnw_entropy).",
    needs_data=True,
    batch_size=VKDNW.batch_size,
    data_kind=VKDNW.data_kind,
    init=VKDNW.init,
    normalisation=VKDNW.normalisation,
    extra_choices=VKDNW.extra_choices,
    shared_pass=_vkdnw.FISHER,
)
