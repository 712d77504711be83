"""VKDNW's shared pass: per-sample Jacobians of the logits with respect to a few sampled weights,
and the factor of the softmax covariance that turns them into an empirical Fisher matrix.

Protocol of ondratybl/VKDNW NB201/ZeroShotProxy/compute_vkdnw_score.py: the network in eval mode,
the first element of each of the first 128 parameter tensors (named_parameters order), the
Jacobian of each sample's logits with respect to those scalars, the factor L of diag(p) - p p^T
(p the softmax smoothed towards uniform by alpha = 0.05), F = mean_n (L_n J_n)^T (L_n J_n).

How the per-sample Jacobians are computed (not how the reference does it): one batched forward,
in which each sampled weight w of a layer adds delta * dout/dw to that layer's output, where
delta is a per-sample vector of zeros and dout/dw comes from a forward-mode jvp of that layer
alone; one backward per class then gives d logit[n, c] / dw for every sample n as the gradient
with respect to delta[n]. No weight gradient is ever formed, which makes this several times
faster on a CPU than the reference's vmap(jacrev) over per-sample weight copies. It relies on
sample n owning row n of every such layer output; a batch-of-one recomputation of sample 0
checks that, and where it fails (a layout without the batch first, or layers that mix samples
in eval mode, e.g. BN without running statistics) every sample is computed alone, which is what
the reference does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jvp
from torch.utils._pytree import tree_map

from edgescore.server.errors import FailedPrecondition, NumericalFailure
from edgescore.server.proxies.base import ProxyInput, SharedPass

MAX_TENSORS = 128  # compute_nas_score(params_grad_len=128): the first 128 parameter tensors
PER_TENSOR = 1  # elements sampled per tensor (the paper's "one weight per layer")
ALPHA = 0.05  # cholesky_covariance: p = softmax * (1 - alpha) + alpha / C
# Sample 0 of the batch must match its batch-of-one recomputation this closely.
_CHECK_RTOL = 1e-3


@dataclass(frozen=True)
class FisherFactors:
    """What the empirical Fisher matrix is made of (float64, CPU)."""

    jac: np.ndarray  # (N, C, P) d logit[n, c] / d theta_p for the P sampled weights
    chol: np.ndarray  # (N, C, C) lower-triangular L_n with L_n L_n^T = diag(p_n) - p_n p_n^T
    param_tensors: int  # len(list(network.named_parameters())): the reference's vkdnw_dim


def sampled_weights(network: nn.Module) -> list[tuple[nn.Parameter, list[int]]]:
    """(tensor, flat indices) for the first MAX_TENSORS parameter tensors: the reference's
    linspace(0, numel - 1, steps=PER_TENSOR) indices, i.e. element 0 with one step."""
    chosen = []
    for _, p in list(network.named_parameters())[:MAX_TENSORS]:
        idx = torch.linspace(0, p.numel() - 1, steps=PER_TENSOR).long().tolist()
        chosen.append((p, idx))
    return chosen


def _owners(network: nn.Module, chosen: list[tuple[nn.Parameter, list[int]]]
            ) -> dict[nn.Module, list[tuple[str, list[int], int]]]:
    """module -> (parameter name, flat indices, first column) for every module holding a sampled
    tensor directly (a tensor shared by two modules is listed under both)."""
    column, first = {}, 0
    for p, idx in chosen:
        column[id(p)] = (idx, first)
        first += len(idx)
    owners: dict[nn.Module, list[tuple[str, list[int], int]]] = {}
    for module in network.modules():
        for name, p in module._parameters.items():
            if p is not None and id(p) in column:
                owners.setdefault(module, []).append((name, *column[id(p)]))
    return owners


def _jacobian(network: nn.Module, x: torch.Tensor, chosen: list, columns: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(J (N, C, P), logits (N, C)) by tangent terms; exact where rows are samples (see top)."""
    n = x.shape[0]
    owners = _owners(network, chosen)
    deltas = torch.zeros((columns, n), dtype=x.dtype, device=x.device, requires_grad=True)
    inside_jvp = False
    leading: set[int] = set()

    def hook(module: nn.Module, args: tuple, kwargs: dict, out: object) -> object:
        nonlocal inside_jvp
        if inside_jvp:  # the layer's own re-run below, or a layer inside it
            return None
        for name, idx, first in owners[module]:
            weight = getattr(module, name)
            for k, flat in enumerate(idx):
                tangent = torch.zeros_like(weight).view(-1)
                tangent[flat] = 1.0
                inside_jvp = True
                try:
                    with torch.no_grad():
                        _, dout = jvp(lambda w, name=name: functional_call(
                            module, {name: w}, args, kwargs), (weight.detach(),),
                            (tangent.view_as(weight),))
                finally:
                    inside_jvp = False
                add = functools.partial(_add_tangent, delta=deltas[first + k], leading=leading)
                out = tree_map(add, out, dout)
        return out

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in owners]
    try:
        logits = network(x)
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise FailedPrecondition(f"vkdnw: needs class logits of shape (batch, classes), the "
                                 f"network returns {shape}")
    if n > 1 and leading - {n}:
        raise _NotBatchFirst()
    if not logits.requires_grad:  # no sampled weight reaches the logits
        return torch.zeros((n, logits.shape[1], columns), dtype=x.dtype), logits.detach()
    rows = []
    for c in range(logits.shape[1]):
        # Sampled weights off the logits' graph (unused layers) keep a zero column.
        (grad,) = torch.autograd.grad(logits[:, c].sum(), deltas, retain_graph=True,
                                      allow_unused=True, materialize_grads=True)
        rows.append(grad.T)
    return torch.stack(rows, dim=1).detach(), logits.detach()


def _add_tangent(o: torch.Tensor, d: torch.Tensor, delta: torch.Tensor, leading: set[int]
                 ) -> torch.Tensor:
    """o + delta[n] * d on each sample n's rows (zero-valued: only its gradient matters)."""
    if o.dim() == 0:  # a scalar output: only a batch of one owns it
        leading.add(-1)
        return o + delta.sum() * d
    leading.add(o.shape[0])
    box = _support(d)
    if box is None:  # this call does not depend on the weight
        return o
    # Only the box of d is kept for the backward (one channel for a conv weight), not a tensor
    # the size of the output per sampled weight.
    o = o.clone()
    o[box] = o[box] + delta.view(-1, *([1] * (o.dim() - 1))) * d[box]
    return o


def _support(d: torch.Tensor) -> tuple[slice, ...] | None:
    """Slices (all of dim 0, then the nonzero range of every other dim) holding every nonzero
    of `d`; None if `d` is zero."""
    nonzero = d.ne(0)
    if not bool(nonzero.any()):
        return None
    box: list[slice] = [slice(None)]
    for dim in range(1, d.dim()):
        along = nonzero.movedim(dim, 0).reshape(d.shape[dim], -1).any(dim=1).nonzero()
        box.append(slice(int(along[0]), int(along[-1]) + 1))
    return tuple(box)


class _NotBatchFirst(Exception):
    """A hooked layer's output does not lead with the batch: compute sample by sample."""


def per_sample_jacobian(network: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(J, logits) of the eval-mode `network` at the batch `x`, J[n, c, p] = d logit[n, c] /
    d theta_p for the sampled weights; logits from one batched forward, as the reference's."""
    chosen = sampled_weights(network)
    columns = sum(len(idx) for _, idx in chosen)
    try:
        jac, logits = _jacobian(network, x, chosen, columns)
        alone, _ = _jacobian(network, x[:1], chosen, columns)
        scale = float(alone.abs().max())
        if float((jac[0] - alone[0]).abs().max()) <= _CHECK_RTOL * scale + 1e-12:
            return jac, logits
    except _NotBatchFirst:
        with torch.no_grad():
            logits = network(x)
    jac = torch.cat([_jacobian(network, x[i:i + 1], chosen, columns)[0]
                     for i in range(x.shape[0])])
    return jac, logits


def softmax_cov_factor(logits: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """(N, C, C) lower-triangular L with L L^T = diag(p) - p p^T, p = softmax smoothed by
    `alpha` (the multinomial covariance's closed-form Cholesky factor, as the reference's
    cholesky_covariance): with q_k = 1 - sum_{i<=k} p_i and q_{-1} = 1, L[k, k] = d_k =
    sqrt(p_k q_k / q_{k-1}) and L[i, k] = -p_i d_k / q_k below the diagonal. The last column is
    zero (q_{C-1} = 0): the covariance has rank C - 1."""
    p = torch.softmax(logits.double(), dim=1) * (1 - alpha) + alpha / logits.shape[1]
    q = (1.0 - torch.cumsum(p, dim=1)).clamp_min(0.0)
    q[:, -1] = 0.0
    q_prev = torch.cat([torch.ones_like(q[:, :1]), q[:, :-1]], dim=1)
    d = torch.sqrt(p * q / q_prev)
    safe_q = torch.where(q > 0, q, torch.ones_like(q))
    below = -p.unsqueeze(2) * (d / safe_q).unsqueeze(1)  # [n, i, k] = -p_i d_k / q_k
    lower = torch.tril(below, diagonal=-1)
    return lower + torch.diag_embed(d)


def fisher_factors(inp: ProxyInput) -> FisherFactors:
    """The shared pass: init as the reference, eval mode, one batch (see the module doc)."""
    network = inp.network
    if inp.settings.init == "kaiming":
        # The rest of the reference's kaiming_norm_fanin init after the engine's kaiming weights:
        # zero Conv2d/Linear biases (BN affine is already 1, 0 on a fresh network).
        with torch.no_grad():
            for m in network.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                    m.bias.zero_()
    network.eval()  # get_fisher's model.eval(): BN normalises with its fresh running statistics
    for p in network.parameters():
        p.requires_grad_(False)  # no weight gradient is needed (see the module doc)
    x, _ = inp.batch()
    jac, logits = per_sample_jacobian(network, x)
    if not (torch.isfinite(jac).all() and torch.isfinite(logits).all()):
        raise NumericalFailure("vkdnw: non-finite logits or Jacobian")
    return FisherFactors(jac.double().cpu().numpy(), softmax_cov_factor(logits).cpu().numpy(),
                         len(list(network.named_parameters())))


FISHER = SharedPass(
    name="vkdnw_fisher",
    run=fisher_factors,
    description="eval-mode per-sample Jacobians of the logits w.r.t. element 0 of each of the "
                "first 128 parameter tensors, and the Cholesky factor of each sample's smoothed "
                "softmax covariance",
)

# extra fisher: how L enters. "reference": A_n = L_n J_n, as the reference code (F = J^T L^T L J);
# "exact": A_n = L_n^T J_n, so F = mean_n J_n^T (diag(p_n) - p_n p_n^T) J_n, the textbook Fisher.
FISHER_CHOICES = ("reference", "exact")
DECILES = np.arange(1, 10) / 10.0  # torch.arange(0.1, 1., 0.1): 0.1 .. 0.9


def fisher_matrix(factors: FisherFactors, form: str = FISHER_CHOICES[0]) -> np.ndarray:
    chol = factors.chol if form == "reference" else np.transpose(factors.chol, (0, 2, 1))
    a = chol @ factors.jac  # (N, C, P)
    return np.einsum("ncp,ncq->pq", a, a) / a.shape[0]


def entropy_of_deciles(fisher: np.ndarray) -> float:
    """-sum t log(t + 1e-10), t = the deciles 0.1..0.9 of F's singular values (linear
    interpolation, torch.quantile's) over their sum + 1e-10: the reference's vkdnw_entropy."""
    try:
        lambdas = np.linalg.svd(fisher, compute_uv=False)
    except np.linalg.LinAlgError as exc:  # the reference would score 0 here
        raise NumericalFailure(f"vkdnw: SVD of the Fisher matrix failed ({exc})") from exc
    quantiles = np.quantile(lambdas, DECILES)
    total = float(np.abs(quantiles).sum())
    if not total > 0.0:
        raise NumericalFailure(
            "vkdnw: every decile of the Fisher spectrum is 0: the logits depend on almost none "
            "of the sampled weights (e.g. a cell whose output does not depend on its input)")
    t = quantiles / (total + 1e-10)
    return float(-(t * np.log(t + 1e-10)).sum())
