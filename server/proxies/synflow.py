"""SynFlow (Tanaka et al., NeurIPS 2020) with the zero-cost-nas protocol for NAS."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _PassThrough(nn.Module):
    """The identity for a BatchNorm, also where it is called with its statistics as inputs
    (onnx2torch's OnnxBatchNorm takes scale, bias, mean and variance as arguments)."""

    def forward(self, x: torch.Tensor, *_stats: torch.Tensor) -> torch.Tensor:
        return x


def _strip_batchnorm(network: nn.Module) -> None:
    # zero-cost-nas registers 'synflow' with bn=False: its copy turns every BatchNorm's forward
    # into the identity, so the score sees only weights (not batch statistics of an all-ones input).
    for parent in list(network.modules()):
        for child_name, child in list(parent.named_children()):
            # onnx2torch's OnnxBatchNorm (an uploaded ONNX model) is a BatchNorm as well.
            if isinstance(child, _BATCHNORMS) or type(child).__name__ == "OnnxBatchNorm":
                setattr(parent, child_name, _PassThrough())


def synflow_score(network: nn.Module, input_shape: tuple[int, ...],
                  device: torch.device | str = "cpu") -> float:
    """The raw SynFlow score sum |theta * dR/dtheta| over Conv2d and Linear weights. Changes
    `network` in place (BN removed, float64, absolute values), so pass a copy you may change."""
    _strip_batchnorm(network)
    network.double()
    with torch.no_grad():
        # All of the state, biases included, as in the reference's linearize(): biases take part in
        # the forward pass (and so in the weights' gradients) but are not scored.
        for tensor in network.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    network.zero_grad(set_to_none=True)
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    torch.sum(network(ones)).backward()
    total = torch.zeros((), dtype=torch.float64, device=device)
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.grad is not None:
            total += (layer.weight * layer.weight.grad).abs().sum()
    return float(total.item())


def compute(inp: ProxyInput) -> float:
    score = synflow_score(inp.network, inp.arch.input_shape, inp.device)
    if score == 0.0:
        raise NumericalFailure(
            "synflow: score is 0, log undefined: no weighted path from input to output carries "
            "signal (degenerate/zero path, e.g. every route passes a 'none' op)")
    return math.log(score)  # NaN/inf pass through; the engine reports them as non-finite


PROXY = Proxy(
    name="synflow",
    compute=compute,
    unit="log synaptic flow",
    transform="log",
    description="log of the SynFlow score: on a float64 copy with BatchNorm removed and every "
                "parameter replaced by its absolute value, R = sum(network(all-ones input of "
                "batch 1)); score = sum over Conv2d and Linear weights of |theta * dR/dtheta| "
                "(biases take part in R but are not summed). Data-free.",
    reference="Tanaka et al., 'Pruning neural networks without any data by iteratively conserving "
              "synaptic flow', NeurIPS 2020; protocol of Abdelfattah et al., 'Zero-Cost Proxies "
              "for Lightweight NAS', ICLR 2021, SamsungLabs/zero-cost-nas "
              "foresight/pruners/measures/synflow.py ('synflow', bn=False).",
    mutates_network=True,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
