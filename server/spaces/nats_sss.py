"""NATS-Bench size search space (SSS): channel strings and their CIFAR network.

An architecture is five channel counts "c0:c1:c2:c3:c4", each one of 8, 16, ..., 64 (8^5 = 32,768
architectures). Every architecture uses the same cell, the best one of the topology space, and
differs only in widths. The network reproduces xautodl's `DynamicShapeTinyNet` (what NATS-Bench's
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

import copy
import random
import re
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgument
from . import nb201
from .base import ParsedArch

FIELD = "arch.nats_sss"
CANDIDATES = (8, 16, 24, 32, 40, 48, 56, 64)  # xautodl get_search_spaces("sss", "nats-bench")
NUM_LAYERS = 5
# The fixed cell (xautodl exps/NATS-Bench/main-sss.py: the TSS arch with the best CIFAR-100
# validation accuracy, index 9930).
GENOTYPE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
CELL = nb201.parse_arch_string(GENOTYPE)
REDUCTION_LAYERS = (1, 3)  # the residual blocks; the other layers are cells
NUM_CLASSES_RANGE = nb201.NUM_CLASSES_RANGE
# Each stride-2 block adds an avg-pooled shortcut (floor) to a strided conv (ceil): the two agree
# only on even sizes, so the input must be divisible by 4.
RESOLUTION_RANGE = (8, 1024)
RESOLUTION_MULTIPLE = 4
MAX_SPEC_CHARS = 1_000
NETWORK_VARIANTS = ("default",)

Channels = tuple[int, ...]  # always NUM_LAYERS entries from CANDIDATES

_TOKEN_RE = re.compile(r"[0-9]{1,4}")


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(FIELD, message)


def _check_channel(index: int, value: int) -> int:
    if value not in CANDIDATES:
        shown = value if abs(value) < 10**6 else "a huge number"  # str() of a huge int raises
        raise _bad(f"channel {index} is {shown}; each must be one of "
                   f"{', '.join(map(str, CANDIDATES))}")
    return value


def parse_channels(spec: Any) -> Channels:
    """Validate "c0:c1:c2:c3:c4" or a list of five ints (JSON arrays arrive as lists)."""
    if isinstance(spec, str):
        if len(spec) > MAX_SPEC_CHARS:
            raise _bad(f"string is {len(spec)} characters, at most {MAX_SPEC_CHARS}")
        tokens = spec.split(":")
        if len(tokens) != NUM_LAYERS:
            raise _bad(f"expected {NUM_LAYERS} channel counts separated by ':' (e.g. "
                       f"{SPACE.example}), got {len(tokens)} in {nb201._quote(spec)}")
        values = []
        for index, token in enumerate(tokens):
            if not _TOKEN_RE.fullmatch(token):
                raise _bad(f"channel {index} {nb201._quote(token)} is not a plain integer")
            values.append(_check_channel(index, int(token)))
        return tuple(values)
    if isinstance(spec, (list, tuple)):
        if len(spec) != NUM_LAYERS:  # before looking inside: bounds the work on huge lists
            raise _bad(f"expected {NUM_LAYERS} channel counts, got a list of {len(spec)}")
        for index, value in enumerate(spec):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(f"channel {index} is a {type(value).__name__}, expected an integer")
            _check_channel(index, value)
        return tuple(spec)
    raise _bad(f"expected a string 'c0:c1:c2:c3:c4' or a list of 5 integers, "
               f"got {type(spec).__name__}")


def canonical_string(channels: Channels) -> str:
    return ":".join(str(c) for c in channels)


# ---- network ---------------------------------------------------------------------------------


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

    def __init__(self, payload: nb201.Payload, c_in: int, c_out: int) -> None:
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
        return nodes[nb201.OUTPUT_NODE]


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


class NatsSssSpace:
    """The SearchSpace for NATS-Bench's size search space (32,768 architectures)."""

    name = "nats_sss"
    description = (
        "NATS-Bench SSS: widths of the 5 layers (cell, residual block, cell, residual block, cell) "
        "of the CIFAR network with the fixed best TSS cell"
    )
    example = "64:64:64:64:64"
    fields = {
        "format": "c0:c1:c2:c3:c4 (or a list of 5 integers); c0 is the stem and first cell "
                  "width, c1/c3 the residual blocks, c2/c4 the second and third cell",
        "channels": ", ".join(map(str, CANDIDATES)),
        **nb201.shape_fields(RESOLUTION_MULTIPLE, RESOLUTION_RANGE),
    }
    default_num_classes = 10
    default_input_resolution = 32
    network_variants = NETWORK_VARIANTS

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        channels = parse_channels(spec)
        classes, resolution = nb201.check_shape(num_classes, input_resolution,
                                                RESOLUTION_MULTIPLE, RESOLUTION_RANGE)
        return ParsedArch(
            space=self.name,
            canonical=canonical_string(channels),
            num_classes=classes,
            input_resolution=resolution,
            payload=channels,
        )

    def largest(self, num_classes: int, input_resolution: int) -> ParsedArch:
        """Every layer at the widest choice: the most parameters and MACs of the space."""
        widest = ":".join([str(CANDIDATES[-1])] * NUM_LAYERS)
        return self.parse(widest, num_classes, input_resolution)

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        if variant not in ("", *NETWORK_VARIANTS):
            raise ValueError(f"unknown NATS-SSS network variant {variant!r}; known: "
                             f"{', '.join(NETWORK_VARIANTS)}")
        return ShapeTinyNetwork(arch.payload, arch.num_classes)

    def build_exportable(self, arch: ParsedArch, network: nn.Module | None = None) -> nn.Module:
        """A copy of `network` (default: a fresh build): the fixed cell has no `none` edge and
        every edge reaches the output, so nothing is dead."""
        if network is None:
            return self.build(arch)
        if not isinstance(network, ShapeTinyNetwork):
            raise TypeError(f"expected a ShapeTinyNetwork, got {type(network).__name__}")
        return copy.deepcopy(network)

    def sample(self, rng: random.Random) -> str:
        """Uniform over the 32,768 architectures (xautodl regularized_ea.py random_size_func)."""
        return canonical_string(tuple(rng.choice(CANDIDATES) for _ in range(NUM_LAYERS)))

    def mutate(self, spec: Any, rng: random.Random) -> str:
        """One layer's width resampled (xautodl regularized_ea.py mutate_size_func), from the
        other seven values so that the child always differs from its parent."""
        channels = list(parse_channels(spec))
        layer = rng.randrange(NUM_LAYERS)
        channels[layer] = rng.choice([c for c in CANDIDATES if c != channels[layer]])
        return canonical_string(tuple(channels))


SPACE = NatsSssSpace()
