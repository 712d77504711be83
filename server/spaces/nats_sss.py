"""NATS-Bench size search space (SSS): the CIFAR network of five channel counts
(edgescore.grammar.nats_sss parses "c0:c1:c2:c3:c4").

The network reproduces xautodl's `DynamicShapeTinyNet` (what NATS-Bench's
`get_cell_based_tiny_net` builds for the config name "infer.shape.tiny") layer for layer, so
parameter counts match the benchmark's `get_cost_info(...)["params"]`.

Channel placement. NATS-Bench's README describes the string as (1st conv, 1st cell stage, 1st
residual block, 2nd cell stage, 2nd residual block), which would leave the third cell stage without
a width of its own. The code (xautodl models/shape_infers/InferTinyCellNet.py) does something else,
and the benchmark's parameter counts follow the code (tests/test_space_nats_sss.py checks four):
five layers after the stem, [cell, residual block, cell, residual block, cell], where layer i
outputs c_i. The stem outputs c0 too, so the first cell maps c0 -> c0; the classifier reads c4.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgescore.grammar import nats_sss
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.nats_sss import CELL, Channels
from edgescore.grammar.nb201 import OUTPUT_NODE, Payload
from edgescore.server.spaces import nb201
from edgescore.server.spaces.base import SingleNetworkSpace

REDUCTION_LAYERS = (1, 3)  # the residual blocks; the other layers are cells
NETWORK_VARIANTS = ("default",)


class SkipProjection(nn.Sequential):
    """`skip_connect` across a width change: xautodl's FactorizedReduce at stride 1, which is a 1x1
    conv (no bias) and BN. Unlike ReLUConvBN there is no ReLU in front (xautodl applies it only in
    the stride-2 branch)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            OrderedDict(conv=nn.Conv2d(c_in, c_out, 1, bias=False), bn=nn.BatchNorm2d(c_out))
        )


def _edge_op(op: str, c_in: int, c_out: int) -> nn.Module:
    if c_in == c_out:
        return nb201.make_op(op, c_out)
    if op in ("nor_conv_3x3", "nor_conv_1x1"):
        return nb201.ReLUConvBN(c_in, c_out, 3 if op == "nor_conv_3x3" else 1, 1)
    if op == "skip_connect":
        return SkipProjection(c_in, c_out)
    raise ValueError(f"op {op!r} across a width change is not part of the NATS-Bench SSS cell")


class ShapeCell(nn.Module):
    """nb201's cell with separate input and output widths (xautodl InferCell(genotype, C_in, C_out,
    1)): edges leaving node 0 map c_in -> c_out, all other edges c_out -> c_out. nb201.InferCell
    has one width only, hence this class."""

    def __init__(self, payload: Payload, c_in: int, c_out: int) -> None:
        super().__init__()
        self.edge_list: list[tuple[int, int]] = []  # (source, target), sorted by target
        self.edges = nn.ModuleDict()
        for target, node in enumerate(payload, start=1):
            for op, source in node:
                self.edges[f"{source}_to_{target}"] = _edge_op(
                    op, c_in if source == 0 else c_out, c_out
                )
                self.edge_list.append((source, target))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: dict[int, torch.Tensor] = {0: x}
        for j, i in self.edge_list:  # by target, so every source is complete before it is read
            out = self.edges[f"{j}_to_{i}"](nodes[j])
            nodes[i] = nodes[i] + out if i in nodes else out
        return nodes[OUTPUT_NODE]


class ShapeTinyNetwork(nb201.CellNetwork):
    """Stem (conv + BN to c0), then cell, residual block, cell, residual block, cell with output
    widths c0..c4, then BN + ReLU, global average pool and a linear classifier."""

    def __init__(self, channels: Channels, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, channels[0], 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(channels[0]),
        ))
        self.cells = nn.ModuleList()
        c_prev = channels[0]
        for layer, c_out in enumerate(channels):
            if layer in REDUCTION_LAYERS:
                self.cells.append(nb201.ResNetBasicBlock(c_prev, c_out, 2))
            else:
                self.cells.append(ShapeCell(CELL, c_prev, c_out))
            c_prev = c_out
        self.add_head(c_prev, num_classes)


class NatsSssSpace(SingleNetworkSpace):
    """NATS-Bench's size search space (32,768 architectures) and its CIFAR network."""

    network_variants = NETWORK_VARIANTS

    network_type = ShapeTinyNetwork

    def make_network(self, arch: ParsedArch) -> nn.Module:
        return ShapeTinyNetwork(arch.payload, arch.num_classes)


SPACE = NatsSssSpace(nats_sss.GRAMMAR)
