"""plain: the first-order Taylor saliency W * dL/dW summed over the network, served negated."""

from __future__ import annotations

import math

from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput
from edgescore.server.proxies.passes import GRADIENTS, LayerGradStats


def compute(inp: ProxyInput) -> float:
    stats: tuple[LayerGradStats, ...] = inp.shared
    # Negated: on NB201 the raw sum ranks worse networks higher (docs/proxies.md#plain).
    return -math.fsum(layer.plain for layer in stats)


PROXY = Proxy(
    name="plain",
    compute=compute,
    unit="saliency",
    transform="negate",
    description="Minus the sum over every weight of Conv2d and Linear layers of W * dL/dW (no "
                "absolute value), L = mean cross-entropy of one batch of real images with their "
                "labels; network freshly initialised, BN in train mode. The reference's raw sum "
                "correlates negatively with NB201 accuracy, hence the negation; a weak proxy.",
    reference="Mozer & Smolensky 1989 / LeCun et al. 1990 (first-order saliency); protocol and "
              "code of Abdelfattah et al., ICLR 2021, SamsungLabs/zero-cost-nas "
              "foresight/pruners/measures/plain.py.",
    needs_data=True,
    needs_labels=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=GRADIENTS,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
