"""GraSP (Wang et al., ICLR 2020) as zero-cost-nas scores it: -theta * Hg summed."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput
from edgescore.server.proxies.passes import chunk_loss, run_in_chunks, scored_layers


def grasp_score(inp: ProxyInput, network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """sum over Conv2d/Linear weights of -theta * (H g), g = dL/dtheta, H = the Hessian of L.
    Leaves Hg in the weights' .grad, so pass a network you may change."""
    weights = [layer.weight for _, layer in scored_layers(network)]
    n = x.shape[0]
    grad: list[Optional[torch.Tensor]] = []

    def reset_g() -> None:
        grad[:] = [None] * len(weights)

    def step_g(lo: int, hi: int) -> None:
        # The reference's first pass (T = 1, num_iters = 1: more iterations reuse the same batch).
        parts = torch.autograd.grad(chunk_loss(network, x, y, lo, hi), weights, allow_unused=True)
        for i, part in enumerate(parts):
            if part is not None:
                grad[i] = part if grad[i] is None else grad[i] + part

    def reset_hg() -> None:
        network.zero_grad(set_to_none=True)

    def step_hg(lo: int, hi: int) -> None:
        # Second pass with a graph through the gradient: backward of z = g . dL/dtheta puts the
        # Hessian-gradient product Hg into .grad (g is a constant here).
        loss = chunk_loss(network, x, y, lo, hi)
        grad_f = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        terms = [(g * f).sum() for g, f in zip(grad, grad_f) if g is not None and f is not None]
        if not terms:
            raise NumericalFailure("grasp: no Conv2d/Linear weight is on the loss's graph")
        z = terms[0]
        for term in terms[1:]:
            z = z + term
        z.backward()

    parts = run_in_chunks(inp, n, reset_g, step_g)
    run_in_chunks(inp, n, reset_hg, step_hg, parts)
    with torch.no_grad():
        return math.fsum(float((-w * w.grad).sum()) for w in weights if w.grad is not None)


def compute(inp: ProxyInput) -> float:
    x, y = inp.batch()
    return grasp_score(inp, inp.network, x, y)


PROXY = Proxy(
    name="grasp",
    compute=compute,
    unit="gradient signal",
    transform="none",
    description="GraSP as zero-cost-nas computes it: g = dL/dW over Conv2d and Linear weights, "
                "L = mean cross-entropy of one batch of real images with labels (T = 1); then, "
                "by double backward on the same batch, Hg = d(g . dL/dW)/dW; value = sum over "
                "those weights of -W * Hg (the reference's sign). Network freshly initialised, "
                "BN in train mode. Higher ranks higher, as served.",
    reference="Wang et al., 'Picking Winning Tickets Before Training by Preserving Gradient "
              "Flow', ICLR 2020; protocol and code of Abdelfattah et al., ICLR 2021, "
              "SamsungLabs/zero-cost-nas foresight/pruners/measures/grasp.py.",
    needs_data=True,
    needs_labels=True,
    mutates_network=True,  # gradients in .grad, BN running statistics
    batch_size=64,
    data_kind="cifar10",
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
