"""AZ-NAS expressivity (Lee & Ham, CVPR 2024): how evenly each block's features spread over their
channels, summed over the blocks."""

from __future__ import annotations

from edgescore.server.proxies import _az
from edgescore.server.proxies.base import Proxy, ProxyInput


def compute(inp: ProxyInput) -> float:
    return _az.expressivity_value(inp.shared)


PROXY = Proxy(
    name="az_expressivity",
    compute=compute,
    unit="nats (sum of spectral entropies)",
    transform="none",
    description="AZ-NAS expressivity s^E: for the feature map F of every block (CNNs: the stem "
                "and each top-level block; ViT: both residual sums of every layer; see "
                "server/proxies/_az.py), Sigma = the channel covariance of F over all B*H*W "
                "positions (B*N tokens), p = its eigenvalues / their sum, entropy = sum -p "
                "log(p + 1e-8); value = the sum over the blocks. One train-mode forward of a batch "
                "of 64 N(0, 1) images (data_kind=synthetic, as the reference), Conv2d/Linear "
                "weights Kaiming-normal fan-in (init=kaiming) with biases zeroed. Shared pass "
                "'az_nas' with az_progressivity and az_trainability. A constant feature map (zero "
                "covariance) fails with FAILED_PRECONDITION (the reference scores -inf).",
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024; cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/"
              "compute_az_nas_score.py (expressivity), NB201/custom/tss_model.py "
              "(extract_cell_features), tss_general.ipynb (batch 64, random input).",
    **_az.PASS_PROTOCOL,
)
