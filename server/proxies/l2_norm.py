"""l2_norm: the summed per-layer norms of the weights at initialisation (data-free)."""

from __future__ import annotations

import math

import torch

from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput
from edgescore.server.proxies.passes import scored_layers


def compute(inp: ProxyInput) -> float:
    with torch.no_grad():
        return math.fsum(float(layer.weight.norm()) for _, layer in scored_layers(inp.network))


PROXY = Proxy(
    name="l2_norm",
    compute=compute,
    unit="weight norm",
    transform="none",
    description="Sum over Conv2d and Linear layers of the Euclidean (Frobenius) norm of the "
                "layer's weight tensor at initialisation; biases and BN not counted. Data-free. "
                "Only the layers of this architecture count (as in NASLib; zero-cost-nas's own "
                "NB201 model also builds every unused candidate op).",
    reference="Abdelfattah et al., ICLR 2021, SamsungLabs/zero-cost-nas "
              "foresight/pruners/measures/l2_norm.py; as NAS-Bench-Suite-Zero (Krishnakumar et "
              "al., NeurIPS 2022 D&B), automl/NASLib naslib/predictors/utils/pruners/measures/"
              "l2_norm.py.",
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
