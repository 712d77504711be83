"""AZ-NAS trainability (Lee & Ham, CVPR 2024): how close each block's Jacobian is to an isometry,
from random backward signals, averaged over consecutive pairs of blocks."""

from __future__ import annotations

from edgescore.server.proxies import _az
from edgescore.server.proxies.base import Proxy, ProxyInput


def compute(inp: ProxyInput) -> float:
    return _az.trainability_value(inp.shared)


PROXY = Proxy(
    name="az_trainability",
    compute=compute,
    unit="-sigma - 1/sigma + 2 (mean over block pairs)",
    transform="none",
    description="AZ-NAS trainability s^T: for each consecutive pair of feature maps (F_in, F_out) "
                "(as az_expressivity), g_out = seeded Rademacher noise (+-1) of F_out's shape, "
                "g_in = the vector-Jacobian product (dF_out/dF_in)^T g_out; where the resolution "
                "halves, g_in is PixelUnshuffled by the stride; M = g_in^T g_out / positions "
                "(C_in' x C_out), sigma = its largest singular value; pair score = -sigma - "
                "1/(sigma + 1e-6) + 2 (at most 0, reached at sigma = 1); value = the mean over "
                "pairs. An identity block (g_in = g_out exactly) fails the proxy on CNNs "
                "(FAILED_PRECONDITION; the reference scores -inf) and is skipped on a ViT, as the "
                "reference's AutoFormer code. Same pass and protocol as az_expressivity.",
    reference="Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture "
              "Search', CVPR 2024; cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/"
              "compute_az_nas_score.py (trainability) and ImageNet_AutoFormer/lib/"
              "training_free/indicators/az_nas.py.",
    **_az.PASS_PROTOCOL,
)
