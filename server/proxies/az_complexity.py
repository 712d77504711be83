"""AZ-NAS complexity (Lee & Ham, CVPR 2024): the network's FLOPs, more ranking higher."""

from __future__ import annotations

import dataclasses

from edgescore.server.proxies import flops

# The same count as the flops proxy. On NB201 AZ-NAS ranks NATS-Bench's own FLOPs
# (get_compute_costs(...)['flops']), which count Conv2d/Linear multiply-adds plus their biases:
# flops's MACs plus the classifier's 10 bias additions, a constant, so the ranking is the same
# (checked: 153.27296 M and 121.81568 M for the two archs whose benchmark FLOPs the reference's
# notebook prints, 153.27 M and 121.82 M).
PROXY = dataclasses.replace(
    flops.PROXY,
    name="az_complexity",
    description="AZ-NAS complexity s^C: the network's FLOPs, counted as the flops proxy counts "
                "them (multiply-accumulates of convolutions and matrix products for one input at "
                "the arch's shape). Higher ranks higher, as in AZ-NAS's aggregate (bigger "
                "networks train to higher accuracy within a space). The value equals flops'; it "
                "has its own name so that the az_nas aggregate's members are AZ-NAS's four.",
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024; cvlab-yonsei/AZ-NAS NB201/tss_general.ipynb (rank of the "
              "benchmark's FLOPs), ImageNet_MBV2 Masternet.get_FLOPs, ImageNet_AutoFormer "
              "get_complexity. Counted with torch.utils.flop_counter.FlopCounterMode (FLOPs / 2), "
              "as the flops proxy.",
)
