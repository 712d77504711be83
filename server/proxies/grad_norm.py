"""grad_norm: the summed per-layer norms of the loss gradient at initialisation."""

from __future__ import annotations

from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy
from edgescore.server.proxies.passes import GRADIENTS, summed_over_layers

compute = summed_over_layers("grad_norm")

PROXY = Proxy(
    name="grad_norm",
    compute=compute,
    unit="gradient norm",
    transform="none",
    description="Sum over Conv2d and Linear layers of the Euclidean (Frobenius) norm of the "
                "layer's weight gradient dL/dW, L = mean cross-entropy of one batch of real "
                "images with their labels; network freshly initialised, BN in train mode. "
                "A norm per layer, then a sum (not the norm of the whole gradient).",
    reference="Abdelfattah et al., 'Zero-Cost Proxies for Lightweight NAS', ICLR 2021; "
              "SamsungLabs/zero-cost-nas foresight/pruners/measures/grad_norm.py.",
    needs_data=True,
    needs_labels=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=GRADIENTS,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
