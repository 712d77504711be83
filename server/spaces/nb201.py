"""NAS-Bench-201 (NATS-Bench TSS): parsing the arch string and building its CIFAR network.

The network reproduces NATS-Bench's `TinyNetwork` (C=16, N=5) layer for layer, so parameter counts
and proxy scores are comparable with the benchmark. Module names differ from xautodl's on purpose
(`cells.3.edges.0_to_2.conv` instead of `cells.3.layers.1.op.1`): they show up in hooks, logs and
ONNX node names, where readability matters more than loading xautodl checkpoints.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgument
from .base import ParsedArch

FIELD = "arch.nb201"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4  # node 0 is the cell input, node 3 its output
OUTPUT_NODE = NUM_NODES - 1
STEM_CHANNELS = 16  # C in the benchmark
CELLS_PER_STAGE = 5  # N in the benchmark
NUM_CLASSES_RANGE = (1, 100_000)
RESOLUTION_RANGE = (8, 1024)  # two stride-2 blocks need at least 2x2 left at the end
RESOLUTION_MULTIPLE = 4
MAX_SPEC_CHARS = 1_000  # far above any valid string; keeps error messages bounded
# Networks of one cell that proxies may ask for (the first is the benchmark's own):
#  "benchmark": NATS-Bench TinyNetwork, cell convs without bias, cell BN affine with running stats.
#  "zero_cost_nas": SamsungLabs/zero-cost-nas foresight/models/nasbench2 (NAS201Model), which its
#   proxies were published on: inside cells, convs with bias and BN without affine parameters or
#   running statistics (affine=False, track_running_stats=False); stem, reductions, head as above.
NETWORK_VARIANTS = ("benchmark", "zero_cost_nas")

# payload: for node i = 1..3, a tuple of (op, input_node) for inputs 0..i-1, in index order.
Payload = tuple[tuple[tuple[str, int], ...], ...]
Edge = tuple[int, int, str]  # (source node, target node, op)

_INDEX_RE = re.compile(r"[0-9]+")


def _quote(token: str, limit: int = 60) -> str:
    return repr(token if len(token) <= limit else token[:limit] + "...")


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(FIELD, message)


def _parse_edge(token: str, node: int) -> tuple[str, int]:
    where = f"token {_quote(token)} of node {node}"
    if "~" not in token:
        raise _bad(f"{where} is missing '~': expected 'op~input', e.g. 'nor_conv_3x3~0'")
    op, _, index = token.partition("~")
    if op not in OPS:
        raise _bad(f"unknown op {_quote(op)} in {where}; valid ops: {', '.join(OPS)}")
    if not _INDEX_RE.fullmatch(index):
        raise _bad(f"input index {_quote(index)} in {where} is not a non-negative integer")
    value = int(index)
    if value >= node:
        expected = ", ".join(f"~{j}" for j in range(node))
        raise _bad(f"{where} has input index {value}, but node {node} takes inputs {expected}")
    return op, value


def _parse_node(group: str, node: int) -> tuple[tuple[str, int], ...]:
    if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
        raise _bad(f"node {node} group {_quote(group)} must start and end with '|'")
    tokens = group[1:-1].split("|")
    if "" in tokens:
        raise _bad(f"empty edge token in node {node} group {_quote(group)} (two '|' in a row?)")
    if len(tokens) != node:
        raise _bad(
            f"node {node} needs exactly {node} incoming edge(s) (inputs "
            f"{', '.join(f'~{j}' for j in range(node))}), got {len(tokens)} in {_quote(group)}"
        )
    edges = [_parse_edge(token, node) for token in tokens]
    seen: dict[int, str] = {}
    for (_, index), token in zip(edges, tokens):
        if index in seen:
            raise _bad(
                f"node {node} has input ~{index} twice ({_quote(seen[index])} and {_quote(token)})"
            )
        seen[index] = token
    return tuple(sorted(edges, key=lambda edge: edge[1]))


def parse_arch_string(spec: Any) -> Payload:
    """Validate an NB201 string; edges may come in any order inside a node (they get sorted)."""
    if not isinstance(spec, str):
        raise _bad(f"expected a string, got {type(spec).__name__}")
    if spec == "":
        raise _bad("empty architecture string; expected e.g. " + Nb201Space.example)
    if len(spec) > MAX_SPEC_CHARS:
        raise _bad(f"architecture string is {len(spec)} characters, at most {MAX_SPEC_CHARS}")
    for position, char in enumerate(spec):
        if char.isspace():
            near = spec[max(0, position - 10) : position + 10]
            raise _bad(f"whitespace {char!r} at position {position} (near {near!r}) is not allowed")
    groups = spec.split("+")
    if len(groups) != NUM_NODES - 1:
        raise _bad(f"expected {NUM_NODES - 1} node groups separated by '+', got {len(groups)}")
    return tuple(_parse_node(group, node) for node, group in enumerate(groups, start=1))


def canonical_string(payload: Payload) -> str:
    """The standard NB201 string of a payload (edges in order; no isomorphism reduction)."""
    return "+".join("|" + "|".join(f"{op}~{j}" for op, j in node) + "|" for node in payload)


def _swap_intermediate(payload: Payload) -> Payload:
    """The same cell with nodes 1 and 2 exchanged; only valid when edge 1->2 is `none`."""
    (n1,), (n2_0, _n2_1), (n3_0, n3_1, n3_2) = payload
    return (((n2_0[0], 0),), ((n1[0], 0), ("none", 1)),
            (n3_0, (n3_2[0], 1), (n3_1[0], 2)))


def canonical_payload(payload: Payload) -> Payload:
    """One representative per isomorphism class. Nodes 1 and 2 are interchangeable exactly when
    no edge joins them (1->2 is `none`): both then read only the cell input and both feed node
    3, so exchanging them (with their edges) builds the same network with its modules in other
    places: the same function family, parameter count and cost. The representative is the
    smaller string. Edges that cannot reach the output are NOT merged: the benchmark network
    (and every published proxy on it) keeps their parameters and activations, so such specs
    differ in #Params, FLOPs and NASWOT; they export to one artifact, since the exported
    network is built from `live_payload` (see docs/spaces.md, "Decisions worth knowing")."""
    if payload[1][1][0] != "none":
        return payload
    swapped = _swap_intermediate(payload)
    return min(payload, swapped, key=canonical_string)


def _edges(payload: Payload) -> list[Edge]:
    return [(j, i, op) for i, node in enumerate(payload, start=1) for op, j in node]


def reachable_from_input(payload: Payload) -> set[int]:
    """Nodes that depend on the cell input through non-`none` edges (edges point forward)."""
    reached = {0}
    for j, i, op in _edges(payload):  # sorted by target, so sources are settled first
        if op != "none" and j in reached:
            reached.add(i)
    return reached


def reaches_output(payload: Payload) -> set[int]:
    """Nodes from which the output node can be reached through non-`none` edges."""
    reaching = {OUTPUT_NODE}
    for j, i, op in sorted(_edges(payload), key=lambda edge: -edge[1]):
        if op != "none" and i in reaching:
            reaching.add(j)
    return reaching


def live_edges(payload: Payload) -> tuple[Edge, ...]:
    """Edges that can influence the cell output: non-`none`, fed by the input, feeding node 3."""
    forward, backward = reachable_from_input(payload), reaches_output(payload)
    return tuple(
        (j, i, op)
        for j, i, op in _edges(payload)
        if op != "none" and j in forward and i in backward
    )


def live_payload(payload: Payload) -> Payload:
    """The cell with every edge that cannot influence the output set to `none`, in its
    isomorphism class's representative form: all spellings that compute one function map to
    one payload, from which the export builds (so they share an artifact, weights included)."""
    live = {(j, i) for j, i, _ in live_edges(payload)}
    return canonical_payload(tuple(
        tuple((op if (j, i) in live else "none", j) for op, j in node)
        for i, node in enumerate(payload, start=1)))


def _check_range(field: str, value: Any, default: int, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, f"expected an integer, got {type(value).__name__}")
    if value == 0:
        return default
    low, high = bounds
    if not low <= value <= high:
        raise InvalidArgument(field, f"{value} is outside {low}..{high} (0 means the default)")
    return value


# ---- network ---------------------------------------------------------------------------------


def check_shape(num_classes: Any, input_resolution: Any, multiple: int = 1,
                resolution_range: tuple[int, int] = RESOLUTION_RANGE) -> tuple[int, int]:
    """Class count and input resolution of a CIFAR-style cell network (0: 10 and 32), each
    INVALID_ARGUMENT naming its field. `multiple`: the resolution must divide by it (networks with
    ResNet reduction blocks: each adds a pooled shortcut, rounded down, to a strided conv,
    rounded up; they only line up on even sizes, at both reductions: 4)."""
    classes = _check_range("arch.num_classes", num_classes, 10, NUM_CLASSES_RANGE)
    resolution = _check_range("arch.input_resolution", input_resolution, 32, resolution_range)
    if resolution % multiple:
        raise InvalidArgument("arch.input_resolution",
                              f"must be a multiple of {multiple}, got {resolution}")
    return classes, resolution


def shape_fields(multiple: int = 1,
                 resolution_range: tuple[int, int] = RESOLUTION_RANGE) -> dict[str, str]:
    """ListSearchSpaces' description of what `check_shape` accepts, with the same arguments."""
    resolution = f"{resolution_range[0]}..{resolution_range[1]}"
    if multiple > 1:
        resolution += f", a multiple of {multiple}"
    return {"num_classes": f"{NUM_CLASSES_RANGE[0]}..{NUM_CLASSES_RANGE[1]}, 0 = 10",
            "input_resolution": f"{resolution}, 0 = 32"}


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
        for j, i, op in _edges(payload):
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


class Nb201Space:
    """The SearchSpace for NAS-Bench-201 cells (15,625 architectures)."""

    name = "nb201"
    description = (
        "NAS-Bench-201 / NATS-Bench TSS: one 4-node cell, 6 edges, 5 ops per edge; "
        "CIFAR network with C=16, N=5"
    )
    example = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
        "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    fields = {
        "format": "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|: node i lists one edge from each j < i",
        "ops": ", ".join(OPS),
        **shape_fields(RESOLUTION_MULTIPLE),
    }
    default_num_classes = 10
    default_input_resolution = 32
    network_variants = NETWORK_VARIANTS

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        payload = parse_arch_string(spec)
        classes, resolution = check_shape(num_classes, input_resolution, RESOLUTION_MULTIPLE)
        spelled = canonical_string(payload)
        payload = canonical_payload(payload)
        flags = () if OUTPUT_NODE in reachable_from_input(payload) else ("degenerate_cell",)
        return ParsedArch(
            space=self.name,
            canonical=canonical_string(payload),
            num_classes=classes,
            input_resolution=resolution,
            payload=payload,
            flags=flags,
            spelled=spelled,
            exports_as=canonical_string(live_payload(payload)),
        )

    def largest(self, num_classes: int, input_resolution: int) -> ParsedArch:
        """The arch with the most parameters and MACs: every edge a 3x3 conv (the size caps
        check it once per class count and resolution)."""
        return self.parse(LARGEST, num_classes, input_resolution)

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


LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+" \
          "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SPACE = Nb201Space()
