"""Shared passes: one cross-entropy backward, or one input-Jacobian, for several proxies.

Both follow SamsungLabs/zero-cost-nas (foresight/pruners/measures/*.py): one batch, the network in
train mode, Conv2d and Linear layers scored. Each pass runs on its own copy of the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgescore.server.proxies.base import ProxyInput, SharedPass

BATCH_SPLIT_FLAG = "batch_split"


def scored_layers(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers zero-cost-nas scores (get_layer_metric_array): every Conv2d and Linear."""
    return [(name, m) for name, m in network.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def chunk_loss(network: nn.Module, x: torch.Tensor, y: torch.Tensor, lo: int, hi: int
               ) -> torch.Tensor:
    """Mean cross-entropy of rows lo..hi, weighted by their share of the batch, so that the
    chunks' gradients add up to the whole batch's (the reference's split_data would not: it sums
    per-chunk means). With one chunk the loss is the reference's, untouched."""
    loss = F.cross_entropy(network(x[lo:hi]), y[lo:hi])
    n = x.shape[0]
    return loss if hi - lo == n else loss * ((hi - lo) / n)


def run_in_chunks(inp: ProxyInput, n: int, reset: Callable[[], None],
                  step: Callable[[int, int], None], parts: int = 1) -> int:
    """Run `step(lo, hi)` over `parts` chunks of 0..n; on a CUDA out-of-memory error, `reset()`
    and retry with twice as many chunks, down to one sample each. Returns the chunks used.

    Splitting is exact only for sum-decomposable work without cross-sample coupling: BatchNorm in
    train mode normalises each chunk with its own statistics, so a split value differs from the
    unsplit one. Results computed from chunks carry the `batch_split` flag for that reason."""
    while True:
        reset()
        try:
            for k in range(parts):
                step(k * n // parts, (k + 1) * n // parts)
            break
        except torch.OutOfMemoryError:
            if parts >= n:
                raise
        # Reached only after an OOM; outside the except block, so the failed attempt's tensors
        # (held by the traceback) are freed before the retry.
        parts = min(2 * parts, n)
        if inp.device.type == "cuda":
            torch.cuda.empty_cache()
    if parts > 1 and BATCH_SPLIT_FLAG not in inp.flags:
        inp.flags.append(BATCH_SPLIT_FLAG)
    return parts


# --- the gradients of one cross-entropy backward ------------------------------------------------

@dataclass(frozen=True)
class LayerGradStats:
    """One layer's reductions of dL/dW (float32 sums, as the reference's torch sums)."""

    name: str
    grad_norm: float  # ||dL/dW||_2 (grad_norm.py)
    snip: float  # sum |W * dL/dW| (snip.py: the weight mask's gradient at mask = 1)
    plain: float  # sum W * dL/dW (plain.py)
    # fisher.py: sum_k 0.5 * mean_n (sum_hw a * dL/da)^2 over output channels k, a = the layer's
    # output; times weight[0].numel(), because the reference broadcasts each channel's value to
    # every weight of the channel before its final sum.
    fisher: float


def summed_over_layers(field: str) -> Callable[[ProxyInput], float]:
    """A proxy's compute that sums one LayerGradStats field over the layers of the shared pass."""
    def compute(inp: ProxyInput) -> float:
        stats: tuple[LayerGradStats, ...] = inp.shared
        return math.fsum(getattr(layer, field) for layer in stats)
    return compute


def _fisher_hook(index: int, sq_sums: dict[int, torch.Tensor]) -> Callable:
    # The reference routes each conv/linear output through a dummy nn.Identity with a backward
    # hook; a tensor hook on the output sees the same gradient without replacing forward().
    def forward_hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        act = output.detach()

        def grad_hook(grad: torch.Tensor) -> None:
            prod = act * grad.detach()
            g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            sq = g_nk.pow(2).sum(0)
            # A layer called twice adds both calls (the reference would overwrite its `act`).
            sq_sums[index] = sq if index not in sq_sums else sq_sums[index] + sq

        output.register_hook(grad_hook)
    return forward_hook


def gradient_stats(inp: ProxyInput) -> tuple[LayerGradStats, ...]:
    """One forward and one backward of the mean cross-entropy of the batch (gradients of every
    parameter; Conv2d/Linear outputs hooked for Fisher), reduced per scored layer."""
    network, (x, y) = inp.network, inp.batch()
    n = x.shape[0]
    layers = scored_layers(network)
    sq_sums: dict[int, torch.Tensor] = {}

    def reset() -> None:
        network.zero_grad(set_to_none=True)
        sq_sums.clear()

    def step(lo: int, hi: int) -> None:
        chunk_loss(network, x, y, lo, hi).backward()

    handles = [m.register_forward_hook(_fisher_hook(i, sq_sums)) for i, (_, m) in enumerate(layers)]
    try:
        run_in_chunks(inp, n, reset, step)
    finally:
        for handle in handles:
            handle.remove()
    stats = []
    with torch.no_grad():
        for i, (name, layer) in enumerate(layers):
            w, g = layer.weight, layer.weight.grad
            fisher = 0.0
            if i in sq_sums:
                per_channel = sq_sums[i].div(n).mul(0.5).abs()
                fisher = float(per_channel.sum()) * w[0].numel()
            if g is None:  # not on the loss's graph (e.g. unused): the reference scores zeros
                stats.append(LayerGradStats(name, 0.0, 0.0, 0.0, fisher))
                continue
            wg = w * g
            stats.append(LayerGradStats(name, float(g.norm()), float(wg.abs().sum()),
                                        float(wg.sum()), fisher))
    return tuple(stats)


GRADIENTS = SharedPass(
    name="gradients",
    run=gradient_stats,
    description="one forward + backward of the mean cross-entropy of the calibration batch "
                "(train-mode BN), per Conv2d/Linear layer: ||g||, sum|W*g|, sum W*g, Fisher",
)


# --- per-sample input-Jacobians -----------------------------------------------------------------

@dataclass(frozen=True)
class JacobianCorrelations:
    """np.corrcoef of the flattened input-Jacobians: corr[i, j] correlates samples i and j (a
    per-class block equals np.corrcoef of that class's rows). NaN where a Jacobian is constant."""

    corr: np.ndarray  # (N, N) float64
    labels: np.ndarray  # (N,) int64


def jacobian_correlations(inp: ProxyInput) -> JacobianCorrelations:
    """d(sum of all outputs)/d(input) for the batch, one forward and one backward (to the input
    only), as jacob_cov.py's get_batch_jacobian. In train mode BN couples the samples, and the
    reference's Jacobian includes that coupling; so does this one."""
    network, (x, y) = inp.network, inp.batch()
    n = x.shape[0]
    jac = torch.empty_like(x)

    def step(lo: int, hi: int) -> None:
        xc = x[lo:hi].detach().requires_grad_(True)
        out = network(xc)
        (grad,) = torch.autograd.grad(out, xc, torch.ones_like(out))
        jac[lo:hi] = grad

    run_in_chunks(inp, n, lambda: None, step)
    flat = jac.reshape(n, -1).cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # constant rows: NaN, judged by proxies
        corr = np.atleast_2d(np.corrcoef(flat))
    return JacobianCorrelations(corr, y.cpu().numpy())


JACOBIAN = SharedPass(
    name="input_jacobian",
    run=jacobian_correlations,
    description="one forward + backward to the input of the summed outputs (train-mode BN); "
                "correlation matrix of the per-sample Jacobians",
)
