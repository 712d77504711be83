"""NAS-Bench-101: the CIFAR network of a cell (edgescore.grammar.nb101 parses the cell and
hashes it as NB-101 does).

The network follows google-research/nasbench lib/model_builder.py with lib/base_ops.py, so
trainable parameter counts equal the benchmark's `trainable_parameters`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgescore.grammar import nb101
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.nb101 import Matrix, Payload
from edgescore.server.spaces.base import SingleNetworkSpace

STEM_CHANNELS = 128
NUM_STACKS = 3
CELLS_PER_STACK = 3
BN_EPS = 1e-5
BN_MOMENTUM = 1 - 0.997  # TF's BN decay 0.997 in PyTorch's convention
NETWORK_VARIANTS = ("default",)


class ConvBnRelu(nn.Sequential):
    """base_ops.conv_bn_relu: 'same' conv without bias, BN (gamma and beta trainable), ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            bn=nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            relu=nn.ReLU(inplace=False),
        ))


def make_op(op: str, channels: int) -> nn.Module:
    if op == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3)
    if op == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1)
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)  # pads with -inf, as TF's 'same' max-pool
    raise ValueError(f"unknown NB-101 op {op!r}")


def vertex_channels(c_in: int, c_out: int, matrix: Matrix) -> list[int]:
    """model_builder.compute_vertex_channels: vertices feeding the output split c_out evenly
    (the first ones get the remainder); every other interior vertex takes the max of the
    vertices it feeds, so widths never grow along an edge."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))
    base, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return channels


class Cell(nn.Module):
    """model_builder.build_module. An interior vertex sums its inputs (interior sources truncated
    to its width, the cell input through its own 1x1 projection) and applies its op. The output
    concatenates the vertices feeding it and adds the projected input when input -> output."""

    def __init__(self, payload: Payload, c_in: int, c_out: int) -> None:
        super().__init__()
        matrix, ops = payload
        self.n = n = len(ops)
        self.matrix = matrix
        self.channels = vertex_channels(c_in, c_out, matrix)
        self.projections = nn.ModuleDict(
            {str(v): ConvBnRelu(c_in, self.channels[v], 1) for v in range(1, n) if matrix[0][v]}
        )
        self.vertices = nn.ModuleDict(
            {str(v): make_op(ops[v], self.channels[v]) for v in range(1, n - 1)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, matrix = self.n, self.matrix
        values = [x]
        for t in range(1, n - 1):
            width = self.channels[t]
            inputs = [values[s][:, :width] if self.channels[s] > width else values[s]
                      for s in range(1, t) if matrix[s][t]]
            if matrix[0][t]:
                inputs.append(self.projections[str(t)](x))
            total = inputs[0]
            for extra in inputs[1:]:
                total = total + extra
            values.append(self.vertices[str(t)](total))
        parts = [values[t] for t in range(1, n - 1) if matrix[t][n - 1]]
        if not parts:  # only input -> output is left
            return self.projections[str(n - 1)](x)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if matrix[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


class Nb101Network(nn.Module):
    """Stem conv3x3-BN-ReLU to 128 channels; 3 stacks of 3 cells, each later stack after a 2x2
    max-pool and with twice the channels; global average pool; dense layer with bias."""

    def __init__(self, payload: Payload, num_classes: int) -> None:
        super().__init__()
        self.stem = ConvBnRelu(3, STEM_CHANNELS, 3)
        self.cells = nn.ModuleList()
        c_in = channels = STEM_CHANNELS
        for stack in range(NUM_STACKS):
            if stack > 0:
                # TF 'same' 2x2/2 pooling rounds up on odd sizes, like ceil_mode.
                self.cells.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(CELLS_PER_STACK):
                self.cells.append(Cell(payload, c_in, channels))
                c_in = channels
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(torch.flatten(self.global_pooling(x), 1))


class Nb101Space(SingleNetworkSpace):
    """NAS-Bench-101 cells (423,624 unique architectures) and their CIFAR network (the payload
    is already pruned: every layer feeds the output)."""

    network_variants = NETWORK_VARIANTS

    network_type = Nb101Network

    def make_network(self, arch: ParsedArch) -> nn.Module:
        return Nb101Network(arch.payload, arch.num_classes)


SPACE = Nb101Space(nb101.GRAMMAR)
