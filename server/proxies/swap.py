"""SWAP-Score (Peng et al., ICLR 2024): distinct sample-wise ReLU activation patterns."""

from __future__ import annotations

from edgescore.server.proxies import _swap
from edgescore.server.proxies._swap import INIT_CHOICES, mean_swap
from edgescore.server.proxies.base import Proxy

PROXY = Proxy(
    name="swap",
    compute=mean_swap,
    unit="patterns",
    transform="none",
    description="SWAP-Score: one batch of 16 real CIFAR-10 images (NB201 mean/std) through the "
                "network in train mode, weights N(0, 1) (Conv2d/Linear), biases 0, BN 1/0; every "
                "nn.ReLU (and ReLU6) on a 4-D feature map records each neuron's pattern over the "
                "samples (output > 0); value = number of distinct patterns among all neurons, "
                "averaged over extra inits=32 weight draws on the same batch.",
    reference="Peng, Song, Fayek, Ciesielski & Chang, 'SWAP-NAS: Sample-Wise Activation "
              "Patterns for Ultra-fast NAS', ICLR 2024; pym1024/SWAP src/metrics/swap.py and "
              "correlation.py (--input_samples 16, --repeats 32, network_weight_gaussian_init).",
    **_swap.PROTOCOL,
    extra_choices={"inits": INIT_CHOICES},
)
