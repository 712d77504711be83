"""ZiCo (Li et al., ICLR 2023): inverse coefficient of variation of gradients across batches."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgescore.server.errors import InvalidArgument, NumericalFailure
from edgescore.server.proxies.base import Proxy, ProxyInput

# evolution_search.py --maxbatch 2: the gradients of two batches.
BATCH_CHOICES = ("2", "3", "4", "5", "6", "8", "10", "16")


def layer_gradients(network: nn.Module, x: torch.Tensor, y: torch.Tensor, batches: int
                    ) -> dict[str, torch.Tensor]:
    """name -> (batches, numel) float64 weight gradients of every Conv2d and Linear, one
    forward + backward of the mean cross-entropy per mini-batch (rows k*N//B .. (k+1)*N//B)."""
    layers = [(name, m) for name, m in network.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    weights = [m.weight for _, m in layers]
    per_layer: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    n = x.shape[0]
    for k in range(batches):
        lo, hi = k * n // batches, (k + 1) * n // batches
        loss = F.cross_entropy(network(x[lo:hi]), y[lo:hi])
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for (name, _), g in zip(layers, grads):
            if g is not None:  # off the loss's graph: no gradient, the layer is left out
                per_layer[name].append(g.detach().reshape(-1).double())
    return {name: torch.stack(gs) for name, gs in per_layer.items() if len(gs) == batches}


def zico_from_gradients(grads: dict[str, torch.Tensor]) -> float:
    """sum over layers of log(sum over weights with std > 0 of mean|g| / std(g)), mean and
    (population) std across batches; a layer whose sum is 0 is skipped, as the reference."""
    total, used = 0.0, 0
    for name, g in grads.items():
        if not bool(torch.isfinite(g).all()):
            raise NumericalFailure(f"zico: non-finite gradient in layer {name}")
        std = g.std(dim=0, unbiased=False)
        nonzero = std != 0
        ratio_sum = float((g.abs().mean(dim=0)[nonzero] / std[nonzero]).sum())
        if ratio_sum != 0.0:
            total += math.log(ratio_sum)
            used += 1
    if used == 0:
        raise NumericalFailure("zico: no layer's gradient varies across batches (all std 0), so "
                               "the score is undefined")
    return total


def compute(inp: ProxyInput) -> float:
    batches = int(inp.settings.extra.get("batches", BATCH_CHOICES[0]))
    x, y = inp.batch()
    if x.shape[0] < batches:
        raise InvalidArgument("settings.batch_size", f"zico splits the batch into {batches} "
                                                     f"mini-batches: needs at least {batches}")
    return zico_from_gradients(layer_gradients(inp.network.train(), x, y, batches))


PROXY = Proxy(
    name="zico",
    compute=compute,
    unit="log inverse CV",
    transform="none",  # the reference score already is a log
    description="ZiCo: the calibration batch (real CIFAR-10 with labels, NB201 mean/std) is "
                "split into extra batches=2 mini-batches; one train-mode forward + backward of "
                "the mean cross-entropy of each gives every Conv2d/Linear weight's gradient per "
                "mini-batch; per layer, over weights whose std across mini-batches is non-zero, "
                "S = sum mean|g| / std(g) (population std); value = sum over layers with S > 0 "
                "of log S. Statistics in float64.",
    reference="Li, Yang, Bhardwaj & Marculescu, 'ZiCo: Zero-shot NAS via inverse Coefficient of "
              "Variation on Gradients', ICLR 2023; SLDGroup/ZiCo ZeroShotProxy/compute_zico.py "
              "(getzico, caculate_zico) with evolution_search.py's two training batches "
              "(--maxbatch 2) of 128 (scripts/ZiCo_NAS_*.sh).",
    needs_data=True,
    needs_labels=True,
    mutates_network=True,  # train-mode forwards move BN running stats
    batch_size=256,
    data_kind="cifar10",
    normalisation="nb201",
    extra_choices={"batches": BATCH_CHOICES},
)
