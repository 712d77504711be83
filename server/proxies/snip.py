"""SNIP (Lee et al., ICLR 2019): connection sensitivity |W * dL/dW| summed over the network."""

from __future__ import annotations

from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy
from edgescore.server.proxies.passes import GRADIENTS, summed_over_layers

# The reference multiplies each weight by a mask of ones and takes |dL/dmask|; at mask = 1
# that gradient is W * dL/dW element for element, which the shared pass already has.
compute = summed_over_layers("snip")

PROXY = Proxy(
    name="snip",
    compute=compute,
    unit="saliency",
    transform="none",
    description="Sum over every weight of Conv2d and Linear layers of |W * dL/dW|, L = mean "
                "cross-entropy of one batch of real images with their labels; network freshly "
                "initialised, BN in train mode (equal to the reference's |dL/dmask| at mask = 1).",
    reference="Lee et al., 'SNIP: Single-shot Network Pruning based on Connection Sensitivity', "
              "ICLR 2019; protocol and code of Abdelfattah et al., ICLR 2021, "
              "SamsungLabs/zero-cost-nas foresight/pruners/measures/snip.py.",
    needs_data=True,
    needs_labels=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=GRADIENTS,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
