"""Multiply-accumulates of one forward pass at batch size 1."""

from __future__ import annotations

import torch
from torch import nn

from .base import Proxy, ProxyInput


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    # Each output element of a (grouped) conv reads in_channels/groups * kh * kw inputs.
    kh, kw = module.kernel_size
    per_output = (module.in_channels // module.groups) * kh * kw
    return output.numel() * per_output


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def count_macs(network: nn.Module, input_shape: tuple[int, ...],
               device: torch.device | str = "cpu") -> int:
    """MACs of Conv2d and Linear layers for one forward of a batch of 1; a layer called twice
    counts twice. Puts `network` in eval mode (a batch of 1 cannot be batch-normalised in train
    mode after a flatten), so pass a copy you may change."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_macs(module, output)
        else:
            total += _linear_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in network.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        network.eval()
        dtype = next(network.parameters(), torch.empty(0)).dtype
        with torch.no_grad():
            network(torch.zeros((1, *input_shape), dtype=dtype, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def compute(inp: ProxyInput) -> float:
    return float(count_macs(inp.network, inp.arch.input_shape, inp.device))


PROXY = Proxy(
    name="flops",
    compute=compute,
    unit="MACs",
    transform="none",
    description="Multiply-accumulate operations (MACs, not 2x MACs) of the Conv2d (grouped "
                "convs included) and Linear layers executed in one forward pass of a single input "
                "at the arch's input shape; biases, BN, activations, pooling and additions are "
                "not counted.",
    reference="Forward-hook MAC count as in NAS-Bench-201's xautodl flop_benchmark, but only the "
              "Conv2d/Linear weight MACs: NB201's FLOPs also add bias additions and pooling, so "
              "they are slightly larger for archs with avg_pool_3x3.",
    mutates_network=True,  # eval mode and BN running statistics change
)
