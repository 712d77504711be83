"""Seeded randomness for proxies that draw more than the calibration batch: extra noise, crops,
or networks they build themselves. Never the global RNG (other requests share it)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def generator(seed: int, tag: str) -> torch.Generator:
    """A CPU generator for one purpose (`tag`) of one seed. The calibration batch uses
    Generator(seed) itself, so a stream seeded with the same number would repeat its draws;
    SeedSequence mixes (seed, tag) into an independent 64-bit seed instead."""
    words = [seed & 0xFFFFFFFF, seed >> 32, *tag.encode()]
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) | int(state[1]) << 32)


def _default_init(module: nn.Conv2d | nn.Linear, gen: torch.Generator) -> None:
    # PyTorch's own reset_parameters for Conv2d and Linear, drawn from `gen`.
    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
    if module.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(module.bias, -bound, bound, generator=gen)


def initialise(network: nn.Module, init: str, gen: torch.Generator) -> None:
    """Give every parameter and buffer of a network built on the meta device (then `to_empty`) its
    initial value: PyTorch's defaults drawn from `gen`, then the engine's `init` scheme on
    Conv2d/Linear weights (biases and BN untouched, as the engine does)."""
    schemes = {"kaiming": nn.init.kaiming_normal_, "xavier": nn.init.xavier_normal_,
               "normal": nn.init.normal_}
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                _default_init(module, gen)
                if init != "default":
                    schemes[init](module.weight, generator=gen)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()  # weight 1, bias 0, running stats 0/1: no randomness
            elif any(True for _ in module.parameters(recurse=False)) or any(
                    True for _ in module.buffers(recurse=False)):
                raise TypeError(f"no seeded initialiser for {type(module).__name__}")
