"""MeCo (Jiang, Wang & Bie, NeurIPS 2023): sum over modules of the minimum eigenvalue of the
Pearson correlation matrix of one sample's feature map."""

from __future__ import annotations

import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies import _seeded
from edgescore.server.proxies._hooks import hooked_forward
from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput

# extra["variant"]: "meco" (the paper's main proxy) or "meco_opt" (8 random rows per module,
# the minimum eigenvalue scaled by rows / 8).
VARIANTS = ("meco", "meco_opt")
OPT_ROWS = 8


def _first_tensor(output: object) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def min_corr_eigenvalue(rows: torch.Tensor) -> float:
    """λ_min of the Pearson correlation matrix of `rows` (one variable per row), float64. A
    constant row has no correlation: its entries (NaN) are set to 0, as the reference does,
    which puts an eigenvalue 0 in the spectrum."""
    corr = torch.corrcoef(rows.double())
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
    return float(torch.linalg.eigvalsh(corr)[0])


def meco_score(network: nn.Module, x: torch.Tensor, variant: str, gen: torch.Generator) -> float:
    """Sum over every module call of one no-grad forward of λ_min of its output's first sample,
    reshaped to (first dimension, rest): channels x positions of a conv map, tokens x features of
    a (B, T, D) output. A row with one value (vector outputs, 1x1 maps) has no correlation and
    adds 0."""
    values: list[float] = []

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        out = _first_tensor(output)
        if out is None or out.dim() < 2:
            return
        # output[0]: the first sample of a batched tensor, as the reference's data_output[0].
        fea = out[0].detach()
        if fea.dim() == 0 or fea.numel() == fea.shape[0]:
            return
        fea = fea.reshape(fea.shape[0], -1)
        if not bool(torch.isfinite(fea).all()):
            raise NumericalFailure("meco: non-finite feature map in the forward pass")
        n = fea.shape[0]
        if variant == "meco_opt" and n > OPT_ROWS:
            idx = torch.randperm(n, generator=gen)[:OPT_ROWS].to(fea.device)
            values.append(min_corr_eigenvalue(fea[idx]) * n / OPT_ROWS)
        else:
            values.append(min_corr_eigenvalue(fea))

    hooked_forward(network, x, network.modules(), hook)
    if not values:
        raise NumericalFailure("meco: no module produced a feature map with more than one value "
                               "per row, so there is no correlation matrix")
    return sum(values)


def compute(inp: ProxyInput) -> float:
    x, _ = inp.batch()
    variant = inp.settings.extra.get("variant", VARIANTS[0])
    gen = _seeded.generator(inp.settings.seed, "meco_opt")
    return meco_score(inp.network.train(), x, variant, gen)


PROXY = Proxy(
    name="meco",
    compute=compute,
    unit="sum of λ_min",
    transform="none",
    description="MeCo: one real CIFAR-10 image (zero-cost-nas mean/std), one train-mode forward "
                "of the freshly initialised network (PyTorch default init); every module's "
                "output, first sample, reshaped to rows = its first dimension (channels), "
                "columns = the rest (positions); Pearson correlation matrix of the rows (NaN "
                "entries of constant rows set to 0), minimum eigenvalue (float64 eigvalsh); "
                "value = sum over module calls. extra variant=meco_opt: per module 8 rows drawn "
                "from a generator of the seed, λ_min times rows/8. NB201 runs on the "
                "zero-cost-nas network (extra network).",
    reference="Jiang, Wang & Bie, 'MeCo: Zero-Shot NAS with One Data and Single Forward Pass "
              "via Minimum Eigenvalue of Correlation', NeurIPS 2023; HamsterMimi/MeCo "
              "correlation/NAS_Bench_201.py (get_score, --batch_size 1, init none) on "
              "foresight/models/nasbench2.",
    needs_data=True,
    # A train-mode forward updates BN running statistics.
    mutates_network=True,
    batch_size=1,
    data_kind="cifar10",
    extra_choices={"variant": VARIANTS, "network": ZERO_COST_NAS_NETWORKS},
)
