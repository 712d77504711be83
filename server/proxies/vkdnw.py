"""VKDNW (Tybl & Neumann, CVPR 2025): entropy of the deciles of an empirical Fisher spectrum."""

from __future__ import annotations

from edgescore.server.proxies import _vkdnw
from edgescore.server.proxies.base import Proxy, ProxyInput


def entropy(inp: ProxyInput) -> float:
    """VKDNW of the shared pass's Jacobians under the request's extra fisher form."""
    form = inp.settings.extra.get("fisher", _vkdnw.FISHER_CHOICES[0])
    return _vkdnw.entropy_of_deciles(_vkdnw.fisher_matrix(inp.shared, form))


PROXY = Proxy(
    name="vkdnw",
    compute=entropy,
    unit="nats",
    transform="none",  # the entropy itself, in (0, log 9]: higher is better
    description="VKDNW: network initialised as the reference (Conv2d/Linear weights Kaiming "
                "normal fan-in, biases 0, BN 1/0), then in eval mode (BN with its fresh running "
                "statistics); one batch of 64 N(0, 1) inputs, no labels. J_n = Jacobian of "
                "sample n's logits w.r.t. element 0 of each of the first 128 parameter tensors "
                "(named_parameters order); L_n = Cholesky factor of diag(p) - p p^T, p = "
                "0.95 softmax + 0.05/C; F = mean_n (L_n J_n)^T (L_n J_n) (extra fisher=exact: "
                "L_n^T J_n, the textbook Fisher J^T (diag p - p p^T) J); value = entropy "
                "-sum t log t of the deciles 0.1..0.9 of F's singular values, normalised to sum "
                "1. Orthogonal to size by design: see vkdnw_single for the ranking the paper "
                "serves.",
    reference="Tybl & Neumann, 'Training-free Neural Architecture Search through Variance of "
              "Knowledge of Deep Network Weights', CVPR 2025 (Eq. 11); ondratybl/VKDNW "
              "NB201/ZeroShotProxy/compute_vkdnw_score.py (get_fisher, cholesky_covariance, "
              "get_jacobian_index with one element per tensor and params_grad_len=128), random "
              "input and batch 64 as the NB201 pipeline it derives from (AZ-NAS tss_general).",
    needs_data=True,
    batch_size=64,
    data_kind="synthetic",
    init="kaiming",
    normalisation="nb201",  # for data_kind=cifar10: the NB201 loader's mean/std
    extra_choices={"fisher": _vkdnw.FISHER_CHOICES},
    shared_pass=_vkdnw.FISHER,
)
