"""Fisher (Theis et al. 2018; Turner et al. 2020): per-channel Fisher information of activations."""

from __future__ import annotations

from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy
from edgescore.server.proxies.passes import GRADIENTS, summed_over_layers

compute = summed_over_layers("fisher")

PROXY = Proxy(
    name="fisher",
    compute=compute,
    unit="Fisher information",
    transform="none",
    description="For every output channel k of every Conv2d and Linear layer, with a = the "
                "layer's output (before BN) and L = mean cross-entropy of one batch of real "
                "images with labels: F_k = 0.5 * mean over samples of (sum over positions of "
                "a * dL/da)^2; value = sum of F_k * (weights per output channel), because the "
                "reference spreads each channel's value over the channel's weights before "
                "summing. Network freshly initialised, BN in train mode.",
    reference="Theis et al., 'Faster gaze prediction with dense networks and Fisher pruning', "
              "2018; Turner et al., 'BlockSwap', ICLR 2020; protocol and code of Abdelfattah "
              "et al., ICLR 2021, SamsungLabs/zero-cost-nas foresight/pruners/measures/fisher.py.",
    needs_data=True,
    needs_labels=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=GRADIENTS,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
