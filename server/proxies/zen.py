"""Zen-score (Lin et al., ICCV 2021): log expected feature change under a small input perturbation,
corrected by the BN layers' scale."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgescore.server.errors import FailedPrecondition, InvalidArgument, NumericalFailure
from edgescore.server.proxies import _seeded
from edgescore.server.proxies._hooks import hooked_forward
from edgescore.server.proxies.base import Proxy, ProxyInput

DEFAULT_GAMMA = "0.01"  # compute_zen_score.py --mixup_gamma / evolution_search.py --gamma


def pre_pool_features(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the last nn.AdaptiveAvgPool2d call in one forward of `x`: the feature map
    before global pooling, which the reference reads with forward_pre_GAP (NASLib with a hook on
    the pooling module's input, as here)."""
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple) -> None:
        seen.append(inputs[0])

    # With autograd as the caller has it (the reference runs this under its own no_grad).
    hooked_forward(network, x, (m for m in network.modules()
                                if isinstance(m, nn.AdaptiveAvgPool2d)), hook, pre=True,
                   grad=torch.is_grad_enabled())
    if not seen:
        raise FailedPrecondition("zen: the network has no nn.AdaptiveAvgPool2d, so there is no "
                                 "pre-global-pooling feature map to perturb")
    return seen[-1]


def bn_log_scale(network: nn.Module) -> float:
    """Sum over BatchNorm2d layers (with running stats) of log sqrt(mean running_var)."""
    total = 0.0
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d) and module.running_var is not None:
            mean_var = float(module.running_var.double().mean())
            if not mean_var > 0.0:
                raise NumericalFailure(f"zen: a BN layer's mean running variance is {mean_var}, "
                                       "log undefined")
            total += 0.5 * math.log(mean_var)
    return total


def zen_score(network: nn.Module, x: torch.Tensor, noise: torch.Tensor, gamma: float) -> float:
    """log(mean_i sum_chw |f(x) - f(x + gamma * noise)|) + bn_log_scale, f = pre-pool features,
    after both train-mode forwards (whose BN running-variance updates the BN term reads)."""
    with torch.no_grad():
        out = pre_pool_features(network, x)
        mixed = pre_pool_features(network, x + gamma * noise)
        diff = (out - mixed).abs().flatten(1).sum(1).mean()
        delta = float(diff.double())
    if not math.isfinite(delta):
        raise NumericalFailure(f"zen: feature difference is {delta}")
    if delta == 0.0:
        raise NumericalFailure("zen: f(x) and f(x + gamma*eps) are identical, log undefined: the "
                               "features do not depend on the input (e.g. a degenerate cell)")
    return math.log(delta) + bn_log_scale(network)


def _reference_gaussian_init(network: nn.Module) -> None:
    # The rest of network_weight_gaussian_init, after the engine's N(0, 1) Conv2d/Linear weights:
    # zero biases, BN/GroupNorm affine to (1, 0). No randomness.
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _gamma(extra: dict[str, str]) -> float:
    text = extra.get("mixup_gamma", DEFAULT_GAMMA)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0.0):
        raise InvalidArgument("settings.extra[mixup_gamma]", f"must be a positive number, got "
                                                              f"{text!r}")
    return value


def compute(inp: ProxyInput) -> float:
    gamma = _gamma(inp.settings.extra)
    if inp.settings.init == "normal":
        _reference_gaussian_init(inp.network)
    x, _ = inp.batch()
    gen = _seeded.generator(inp.settings.seed, "zen_mixup_noise")
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    network = inp.network.train()
    return zen_score(network, x, noise, gamma)


PROXY = Proxy(
    name="zen",
    compute=compute,
    unit="log Zen-score",
    transform="none",  # the reference score already is a log
    description="Zen-score: with Conv2d/Linear weights N(0, 1), biases 0, BN affine (1, 0) "
                "(init=normal, the default), two train-mode forwards under no_grad of "
                "x ~ N(0, 1) and x + gamma*eps (eps ~ N(0, 1), gamma = extra mixup_gamma, 0.01); "
                "f = input of the last AdaptiveAvgPool2d (the pre-GAP feature map); value = "
                "log(mean over the batch of sum |f(x) - f(x+gamma*eps)|) + sum over BatchNorm2d "
                "of log sqrt(mean running_var), read after both forwards (momentum 0.1 from "
                "fresh statistics, as the reference). No division by gamma, as the reference "
                "code. data_kind=synthetic is the reference's Gaussian input; cifar10 perturbs "
                "real images instead. No labels.",
    reference="Lin et al., 'Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition', "
              "ICCV 2021; idstcv/ZenNAS ZeroShotProxy/compute_zen_score.py (compute_nas_score, "
              "network_weight_gaussian_init) with the CIFAR search settings of "
              "scripts/Zen_NAS_cifar_params1M.sh (batch 64, resolution 32, repeat 1); pre-GAP "
              "hook as NASLib naslib/predictors/utils/pruners/measures/zen.py.",
    needs_data=True,  # the Gaussian input is the calibration batch of data_kind=synthetic
    mutates_network=True,  # re-initialised biases/BN affine, BN running stats
    batch_size=64,
    data_kind="synthetic",
    init="normal",
    extra_choices={"mixup_gamma": ()},
)
