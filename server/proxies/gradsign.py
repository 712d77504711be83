"""GradSign (Zhang & Jia, ICLR 2022): agreement of per-sample gradient signs across a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies.base import Proxy, ProxyInput

# extra["reduction"]: "sum" over weights (grad_conflict.py, the paper's Spearman experiments) or
# "mean" (naswot-code/gradsign.py's nanmean, its Kendall experiments): sum / number of weights.
REDUCTION_CHOICES = ("sum", "mean")


def scored_weights(network: nn.Module) -> list[torch.Tensor]:
    """The weights the reference flattens (get_flattened_metric): every Conv2d and Linear."""
    return [m.weight for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gradsign_score(network: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   reduction: str = "sum") -> float:
    """sum over weights k of |sum over samples i of sign(dL(x_i, y_i)/dw_k)|, L = cross-entropy,
    each sample forwarded alone (a batch of one, as the reference's inputs[[i]]). An exact zero
    gradient has sign 0; a weight off the loss's graph counts as all zeros."""
    weights = scored_weights(network)
    if not weights:
        raise NumericalFailure("gradsign: the network has no Conv2d or Linear weight to score")
    # Sign sums are integers: int32 keeps them exact whatever the batch size.
    sums = [torch.zeros(w.shape, dtype=torch.int32, device=w.device) for w in weights]
    for i in range(x.shape[0]):
        loss = F.cross_entropy(network(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for acc, g in zip(sums, grads):
            if g is None:
                continue
            if not bool(torch.isfinite(g).all()):
                raise NumericalFailure(f"gradsign: sample {i} has a non-finite gradient")
            acc += torch.sign(g).to(torch.int32)
    total = sum(int(acc.abs().sum()) for acc in sums)
    return total / sum(acc.numel() for acc in sums) if reduction == "mean" else float(total)


def compute(inp: ProxyInput) -> float:
    x, y = inp.batch()
    reduction = inp.settings.extra.get("reduction", REDUCTION_CHOICES[0])
    return gradsign_score(inp.network.train(), x, y, reduction)


PROXY = Proxy(
    name="gradsign",
    compute=compute,
    unit="sign agreements",
    transform="none",
    description="GradSign: for each sample of one batch of real CIFAR-10 images with labels, "
                "forwarded alone (batch of 1, BN in train mode) with the network freshly "
                "initialised, the gradient g_i of its cross-entropy w.r.t. every Conv2d and "
                "Linear weight; value = sum over weights of |sum_i sign(g_i)| (an integer; "
                "the reference's nansum; extra reduction=mean divides by the number of weights, as "
                "the repository's Kendall-tau script). A non-finite gradient is a failure.",
    reference="Zhang & Jia, 'GradSign: Model Performance Inference with Theoretical Insights', "
              "ICLR 2022; cmu-catalyst/GradSign zero-cost-nas-code/foresight/pruners/measures/"
              "grad_conflict.py (get_grad_conflict, score = nansum) run by build.py (batch 128, "
              "zero-cost-nas CIFAR loader, PyTorch default init).",
    needs_data=True,
    needs_labels=True,
    mutates_network=True,  # train-mode forwards move BN running stats
    batch_size=128,
    data_kind="cifar10",
    extra_choices={"reduction": REDUCTION_CHOICES},
)
