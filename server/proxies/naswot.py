"""NASWOT (Mellor et al., ICML 2021): log|K_H| of the ReLU binary-code kernel of one batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies._hooks import hooked_forward
from edgescore.server.proxies.base import Proxy, ProxyInput

# Below this many units per sample, float32 sums of 0/1 products are exact integers.
_EXACT_FLOAT32 = 2**24


def _count_dtype(units: int, device: torch.device) -> torch.dtype:
    # float32 only where it is exact: a CPU matmul at full precision (GPUs may use TF32).
    exact = (units < _EXACT_FLOAT32 and device.type == "cpu"
             and torch.get_float32_matmul_precision() == "highest")
    return torch.float32 if exact else torch.float64


# extra["hooks"]: which modules record codes.
#  "relu": every nn.ReLU and nn.ReLU6 module (the paper's rectified units; a ReLU6 is on or
#    off where a ReLU is, and MobileNet-style networks use nothing else).
#  "reference": every module whose class name contains "ReLU", the reference's
#    `'ReLU' in str(type(module))` test. In NB201 that also matches each ReLUConvBN op, whose input
#    is its inner ReLU's input, so those codes count twice; use it to reproduce published numbers.
HOOK_CHOICES = ("relu", "reference")


def _hooked(module: nn.Module, hooks: str) -> bool:
    if hooks == "reference":
        return "ReLU" in type(module).__name__
    return isinstance(module, (nn.ReLU, nn.ReLU6))


def code_kernel(network: nn.Module, x: torch.Tensor, hooks: str = "relu") -> torch.Tensor:
    """K[i, j] = number of ReLU units on which samples i and j agree (both on or both off),
    summed over every call of every hooked module during one forward of `x` (float64, CPU)."""
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)
    calls = 0

    def hook(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        nonlocal kernel, calls
        codes = (inputs[0].reshape(inputs[0].shape[0], -1) > 0)
        units = codes.shape[1]
        c = codes.to(_count_dtype(units, codes.device))
        ones_count = c.sum(dim=1, dtype=torch.float64)
        # c c^T + (1-c)(1-c)^T == units - |c_i| - |c_j| + 2 c c^T: one matmul instead of two.
        both_on = (c @ c.T).to(torch.float64)
        kernel += units - ones_count[:, None] - ones_count[None, :] + 2 * both_on
        calls += 1

    # Codes need no gradients. The reference first runs a forward+backward only to mark which
    # ReLUs receive gradient; in its NB201 nets that is every ReLU ('none' is x*0, which still
    # backpropagates), so one forward in train mode gives the same K.
    hooked_forward(network, x, (m for m in network.modules() if _hooked(m, hooks)), hook)
    if calls == 0:
        raise NumericalFailure("naswot: no ReLU module ran in the forward pass, so K is empty")
    return kernel.cpu()


def log_abs_det(kernel: torch.Tensor) -> float:
    # As the reference's hooklogdet: numpy slogdet, serving log|det K| whatever the sign (K is a
    # sum of Gram matrices, so PSD; a negative sign can only be rounding on a near-singular K).
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    if sign == 0 or not np.isfinite(logdet):
        raise NumericalFailure(
            "naswot: K is singular (log|K| = -inf): two samples share one binary code over every "
            "ReLU, or the batch is larger than the codes can separate")
    return float(logdet)


def compute(inp: ProxyInput) -> float:
    x, _ = inp.batch()
    hooks = inp.settings.extra.get("hooks", HOOK_CHOICES[0])
    return log_abs_det(code_kernel(inp.network, x, hooks))


PROXY = Proxy(
    name="naswot",
    compute=compute,
    unit="log|K|",
    transform="log|K|",
    description="NASWOT score: for one batch of real images (network freshly initialised, train "
                "mode), every nn.ReLU (and ReLU6) records each sample's binary code (input > 0); "
                "K = sum over ReLUs of c c^T + (1-c)(1-c)^T; value = log|det K| (slogdet). "
                "CIFAR-10 inputs normalised with NB201's mean/std, as the reference. "
                "extra hooks=reference also hooks modules whose class name contains 'ReLU', "
                "as the reference code does (NB201's ReLUConvBN ops then count twice).",
    reference="Mellor et al., 'Neural Architecture Search without Training', ICML 2021 (v2, "
              "log|K_H|); BayesWatch/nas-without-training score_networks.py (hook_logdet) and "
              "scores.py, batch 128 of CIFAR-10 training images without augmentation.",
    needs_data=True,
    # A train-mode forward updates BN running statistics.
    mutates_network=True,
    batch_size=128,
    data_kind="cifar10",
    normalisation="nb201",
    extra_choices={"hooks": HOOK_CHOICES},
)
