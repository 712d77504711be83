"""Multiply-accumulates of one forward pass at batch size 1."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgescore.server.proxies.base import Proxy, ProxyInput


def count_macs(network: nn.Module, input_shape: tuple[int, ...],
               device: torch.device | str = "cpu") -> int:
    """MACs of the convolutions and matrix products (linear layers, attention's Q.K^T and A.V)
    of one forward of a batch of 1; a layer called twice counts twice. Puts `network` in eval
    mode (a batch of 1 cannot be batch-normalised in train mode after a flatten), so pass a copy
    you may change."""
    network.eval()
    dtype = next(network.parameters(), torch.empty(0)).dtype
    # Counting at the dispatcher sees every matmul, also those written out in a forward; module
    # hooks only see nn.Conv2d / nn.Linear.
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros((1, *input_shape), dtype=dtype, device=device))
    return counter.get_total_flops() // 2  # the counter reports 2 FLOPs per multiply-add


def compute(inp: ProxyInput) -> float:
    return float(count_macs(inp.network, inp.arch.input_shape, inp.device))


PROXY = Proxy(
    name="flops",
    compute=compute,
    unit="MACs",
    transform="none",
    description="Multiply-accumulate operations (MACs, not 2x MACs) of the convolutions (grouped "
                "convs included) and matrix products (linear layers, attention's Q.K^T and A.V, an "
                "upload's MatMul/Gemm) executed in one forward pass of a single input at the "
                "arch's input shape; biases, BN, activations, pooling, softmax and additions are "
                "not counted.",
    reference="Counted with torch.utils.flop_counter.FlopCounterMode (FLOPs / 2). On CNN spaces "
              "this equals NAS-Bench-201's xautodl flop_benchmark's Conv2d/Linear weight MACs; "
              "NB201's FLOPs also add bias additions and pooling, so they are slightly larger for "
              "archs with avg_pool_3x3.",
    mutates_network=True,  # eval mode and BN running statistics change
)
