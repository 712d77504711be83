"""NAS-Bench-201 (NATS-Bench TSS): the CIFAR network of a cell (edgescore.grammar.nb201 parses
the arch string).

The network reproduces NATS-Bench's `TinyNetwork` (C=16, N=5) layer for layer, so parameter counts
and proxy scores are comparable with the benchmark. Module names differ from xautodl's on purpose
(`cells.3.edges.0_to_2.conv` instead of `cells.3.layers.1.op.1`): they show up in hooks, logs and
ONNX node names, where readability matters more than loading xautodl checkpoints.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from edgescore.grammar import nb201
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.nb201 import OUTPUT_NODE, Payload, edges, live_edges, live_payload
from edgescore.server.spaces.base import GrammarSpace

STEM_CHANNELS = 16  # C in the benchmark
CELLS_PER_STAGE = 5  # N in the benchmark
# Networks of one cell that proxies may ask for (the first is the benchmark's own):
#  "benchmark": NATS-Bench TinyNetwork, cell convs without bias, cell BN affine with running stats.
#  "zero_cost_nas": SamsungLabs/zero-cost-nas foresight/models/nasbench2 (NAS201Model), which its
#   proxies were published on: inside cells, convs with bias and BN without affine parameters or
#   running statistics (affine=False, track_running_stats=False); stem, reductions, head as above.
NETWORK_VARIANTS = ("benchmark", "zero_cost_nas")


class Zero(nn.Module):
    """The `none` op: multiplies by zero (as the benchmark does) so NaN/inf propagate alike."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN: the benchmark's conv op and ResNet block half. `affine=False`
    gives zero-cost-nas's cell op: conv with bias, BN without affine parameters or running stats."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = True
                 ) -> None:
        super().__init__(
            OrderedDict(
                relu=nn.ReLU(inplace=False),
                conv=nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=not affine),
                bn=nn.BatchNorm2d(c_out, affine=affine, track_running_stats=affine),
            )
        )


def _check_variant(variant: str) -> None:
    if variant not in NETWORK_VARIANTS:
        raise ValueError(f"unknown NB201 network variant {variant!r}; known: "
                         f"{', '.join(NETWORK_VARIANTS)}")


def make_op(op: str, channels: int, variant: str = NETWORK_VARIANTS[0]) -> nn.Module:
    """One cell edge; inside NB201 cells input and output channels are equal and stride is 1."""
    affine = variant != "zero_cost_nas"
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {op!r}")


def _edge_name(source: int, target: int) -> str:
    return f"{source}_to_{target}"


class InferCell(nn.Module):
    """A 4-node DAG cell: node i is the sum of op(node j) over its kept edges j -> i."""

    def __init__(self, payload: Payload, channels: int, variant: str = NETWORK_VARIANTS[0]
                 ) -> None:
        super().__init__()
        _check_variant(variant)
        self.edge_list: list[tuple[int, int]] = []  # (source, target), sorted by target
        self.edges = nn.ModuleDict()
        for j, i, op in edges(payload):
            self.edges[_edge_name(j, i)] = make_op(op, channels, variant)
            self.edge_list.append((j, i))

    def keep_only(self, kept: set[tuple[int, int]]) -> None:
        """Drop every edge not in `kept` (used by pruning; the kept modules keep their weights)."""
        for j, i in [edge for edge in self.edge_list if edge not in kept]:
            del self.edges[_edge_name(j, i)]
        self.edge_list = [edge for edge in self.edge_list if edge in kept]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: dict[int, torch.Tensor] = {0: x}
        for j, i in self.edge_list:  # sorted by target: every source is final before use
            out = self.edges[_edge_name(j, i)](nodes[j])
            nodes[i] = nodes[i] + out if i in nodes else out
        if OUTPUT_NODE not in nodes:
            # Only after pruning: the output is zero. x * 0 rather than zeros_like(x), because the
            # ONNX exporter folds zeros_like into a constant and then drops the unused graph input.
            return x.mul(0.0)
        return nodes[OUTPUT_NODE]


class ResNetBasicBlock(nn.Module):
    """The fixed stride-2 reduction block between stages."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            OrderedDict(
                pool=nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                conv=nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class CellNetwork(nn.Module):
    """What xautodl's cell networks share: stem, a list of cells, then BN + ReLU, global average
    pooling and a linear classifier (NB201's TinyNetwork, NATS-SSS's shape network)."""

    stem: nn.Module
    cells: nn.ModuleList

    def add_head(self, channels: int, num_classes: int) -> None:
        self.lastact = nn.Sequential(
            OrderedDict(bn=nn.BatchNorm2d(channels), relu=nn.ReLU(inplace=False))
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))


class TinyNetwork(CellNetwork):
    """Stem, three stages of N cells joined by two reduction blocks, BN+ReLU, pool, linear.
    `variant` (NETWORK_VARIANTS) changes the cells only."""

    def __init__(
        self, payload: Payload, num_classes: int, c: int = STEM_CHANNELS, n: int = CELLS_PER_STAGE,
        variant: str = NETWORK_VARIANTS[0],
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(3, c, 3, padding=1, bias=False), bn=nn.BatchNorm2d(c))
        )
        self.cells = nn.ModuleList()
        c_prev = c
        for stage, c_curr in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                self.cells.append(ResNetBasicBlock(c_prev, c_curr, 2))
            self.cells.extend(InferCell(payload, c_curr, variant) for _ in range(n))
            c_prev = c_curr
        self.add_head(c_prev, num_classes)


def prune(network: TinyNetwork, payload: Payload) -> TinyNetwork:
    """A copy of `network` without `none` edges and edges that cannot reach the cell output.

    Removed edges are `none` (adds x * 0), feed a node whose value never reaches node 3 (unused),
    or read a node that does not depend on the input. That node is exactly zero for fresh weights
    in eval mode (BN running mean 0, beta 0), which is what the service exports; with trained BN
    statistics a conv edge on it would add a constant that pruning drops. A degenerate cell keeps
    its upstream layers (they still run, as in the reference network) and outputs x * 0.
    """
    pruned = copy.deepcopy(network)
    kept = {(j, i) for j, i, _ in live_edges(payload)}
    for cell in pruned.cells:
        if isinstance(cell, InferCell):
            cell.keep_only(kept)
    return pruned


class Nb201Space(GrammarSpace):
    """NAS-Bench-201 cells (15,625 architectures) and their CIFAR network."""

    network_variants = NETWORK_VARIANTS

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        return TinyNetwork(arch.payload, arch.num_classes, variant=variant or NETWORK_VARIANTS[0])

    def build_exportable(self, arch: ParsedArch, network: nn.Module | None = None) -> nn.Module:
        """Prune `network` (a copy), keeping its weights. By default a fresh network of the live
        cell: dead edges then draw no weights, so every spelling of one function gets the same
        weights from the same seed, hence one artifact and one timed measurement."""
        if network is None:
            live = live_payload(arch.payload)
            network = TinyNetwork(live, arch.num_classes, variant=NETWORK_VARIANTS[0])
            return prune(network, live)
        if not isinstance(network, TinyNetwork):
            raise TypeError(f"expected a TinyNetwork, got {type(network).__name__}")
        return prune(network, arch.payload)


SPACE = Nb201Space(nb201.GRAMMAR)
