"""Condition number of the empirical NTK (TE-NAS, Chen et al., ICLR 2021), served negated."""

from __future__ import annotations

import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies import _tenas
from edgescore.server.proxies.base import Proxy, ProxyInput

# extra["params"]: whose gradients make the NTK features.
#  "weights": parameters whose name contains "weight" (the reference's filter: conv, BN and linear
#   weights, no biases); "all": every trainable parameter.
PARAM_CHOICES = ("weights", "all")
_GRAM_COLUMNS = 1 << 20  # float64 Gram accumulated over column blocks of this width
# Samples per vmapped backward: memory grows with it (one activation-gradient set per sample).
_COTANGENT_CHUNK = 8


def _ntk_params(network: nn.Module, which: str) -> list[torch.Tensor]:
    return [p for name, p in network.named_parameters()
            if p.requires_grad and (which == "all" or "weight" in name)]


def ntk_matrix(network: nn.Module, x: torch.Tensor, which: str = "weights") -> torch.Tensor:
    """Theta[i, j] = <d sum_c f(x_i)_c / d theta, d sum_c f(x_j)_c / d theta> for one forward of the
    whole batch (train-mode BN couples the samples, as in the reference); float64, on x's device.

    Row i is the gradient of sample i's summed logits, as get_ntk_n's
    logit[i:i+1].backward(ones_like) per sample through the shared graph."""
    params = _ntk_params(network, which)
    logits = network(x)
    n = logits.shape[0]
    rows = []
    for lo in range(0, n, _COTANGENT_CHUNK):
        hi = min(n, lo + _COTANGENT_CHUNK)
        # Cotangent k selects sample lo+k's logits; is_grads_batched vmaps the backward over the
        # chunk, the same numbers as one backward per sample, with larger kernels.
        cot = torch.zeros((hi - lo, *logits.shape), dtype=logits.dtype, device=logits.device)
        cot[torch.arange(hi - lo), torch.arange(lo, hi)] = 1.0
        grads = torch.autograd.grad(logits, params, cot, retain_graph=hi < n,
                                    is_grads_batched=True, allow_unused=True)
        # An unused parameter has no gradient for any sample: leaving it out, as the reference
        # does, changes no inner product.
        rows.append(torch.cat([g.reshape(hi - lo, -1) for g in grads if g is not None], 1))
    feats = torch.cat(rows)  # (n, P) float32
    gram = torch.zeros((n, n), dtype=torch.float64, device=feats.device)
    for lo in range(0, feats.shape[1], _GRAM_COLUMNS):
        block = feats[:, lo:lo + _GRAM_COLUMNS].double()
        gram += block @ block.T
    return gram


def condition_number(ntk: torch.Tensor) -> float:
    """lambda_max / lambda_min of a symmetric PSD matrix (eigvalsh, float64). A singular matrix,
    one with NaN/inf, or a failed eigendecomposition is a NumericalFailure."""
    if not bool(torch.isfinite(ntk).all()):
        raise NumericalFailure("ntk_cond: the NTK has NaN/inf entries (non-finite gradients)")
    try:
        eig = torch.linalg.eigvalsh(ntk.cpu())  # ascending
    except torch.linalg.LinAlgError as exc:
        raise NumericalFailure(f"ntk_cond: eigendecomposition failed ({exc})") from exc
    lo, hi = float(eig[0]), float(eig[-1])
    if hi <= 0.0:
        raise NumericalFailure("ntk_cond: the NTK is zero: no sample's output depends on the "
                               "weights (e.g. a degenerate cell cuts the input off)")
    # Below this, lambda_min is rounding noise of a rank-deficient matrix (matrix_rank's bound).
    tol = hi * ntk.shape[0] * torch.finfo(torch.float64).eps
    if lo <= tol:
        raise NumericalFailure(
            f"ntk_cond: the NTK is singular (lambda_min {lo:.3g}, lambda_max {hi:.3g}): two "
            "samples have linearly dependent gradients, or the batch exceeds what the weights "
            "can separate")
    return hi / lo


def compute(inp: ProxyInput) -> float:
    x, _ = inp.batch()
    s = inp.settings
    if s.extra.get("network", _tenas.NETWORK_CHOICES[0]) == "tenas":
        network = _tenas.ntk_network(inp.arch, s.init, s.seed, inp.device)
    else:
        network = inp.network
    network.train()  # get_ntk_n(..., train_mode=True)
    network.zero_grad(set_to_none=True)
    return -condition_number(ntk_matrix(network, x, s.extra.get("params", PARAM_CHOICES[0])))


PROXY = Proxy(
    name="ntk_cond",
    compute=compute,
    unit="-cond(NTK)",
    transform="negate",
    description="Negated condition number lambda_max/lambda_min of the empirical NTK "
                "Theta = J J^T, J[i] = gradient of sample i's summed logits w.r.t. every "
                "parameter named '*weight*' (conv, BN, linear; no biases), one train-mode forward "
                "of a batch of real CIFAR-10 images (NB201 mean/std). Lower cond trains better, so "
                "the negation is served. extra network=tenas (default, nb201 only) scores TE-NAS's "
                "C=3, N=1 network of the cell, network=full the network as built; params=all "
                "adds biases. Gram and eigenvalues in float64; singular NTK is a failure.",
    reference="Chen, Gong & Wang, 'Neural Architecture Search on ImageNet in Four GPU Hours: A "
              "Theoretically Inspired Perspective' (TE-NAS), ICLR 2021; VITA-Group/TENAS "
              "lib/procedures/ntk.py get_ntk_n and prune_tenas.py / prune_launch.py (NB201: "
              "batch 72, repeat 3, train mode, C=3 N=1 network).",
    needs_data=True,
    mutates_network=True,  # network=full: the backward fills .grad and BN running stats move
    batch_size=72,
    data_kind="cifar10",
    repeats=3,
    normalisation="nb201",
    extra_choices={"network": _tenas.NETWORK_CHOICES, "params": PARAM_CHOICES},
)
