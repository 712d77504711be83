"""NAS-Bench-201 (NATS-Bench TSS) cells: the arch string, its canonical form, live edges,
sampling and mutation.

A cell has 4 nodes; node i = 1..3 takes one edge from every node j < i, each edge one of 5 ops
(15,625 cells). The string lists node i's edges as `|op~j|`, nodes joined by '+'.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from edgescore.grammar.base import Grammar, ParsedArch, other_choice
from edgescore.grammar.errors import SpecError, quote
from edgescore.grammar.shapes import check_shape, shape_fields

FIELD = "arch.nb201"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4  # node 0 is the cell input, node 3 its output
OUTPUT_NODE = NUM_NODES - 1
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target) in string order
SIZE = len(OPS) ** len(EDGES)
RESOLUTION_MULTIPLE = 4
MAX_SPEC_CHARS = 1_000  # far above any valid string; keeps error messages bounded

# payload: for node i = 1..3, a tuple of (op, input_node) for inputs 0..i-1, in index order.
Payload = tuple[tuple[tuple[str, int], ...], ...]
Edge = tuple[int, int, str]  # (source node, target node, op)

_INDEX_RE = re.compile(r"[0-9]+")


def _bad(message: str) -> SpecError:
    return SpecError(FIELD, message)


def _parse_edge(token: str, node: int) -> tuple[str, int]:
    where = f"token {quote(token)} of node {node}"
    if "~" not in token:
        raise _bad(f"{where} is missing '~': expected 'op~input', e.g. 'nor_conv_3x3~0'")
    op, _, index = token.partition("~")
    if op not in OPS:
        raise _bad(f"unknown op {quote(op)} in {where}; valid ops: {', '.join(OPS)}")
    if not _INDEX_RE.fullmatch(index):
        raise _bad(f"input index {quote(index)} in {where} is not a non-negative integer")
    value = int(index)
    if value >= node:
        expected = ", ".join(f"~{j}" for j in range(node))
        raise _bad(f"{where} has input index {value}, but node {node} takes inputs {expected}")
    return op, value


def _parse_node(group: str, node: int) -> tuple[tuple[str, int], ...]:
    if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
        raise _bad(f"node {node} group {quote(group)} must start and end with '|'")
    tokens = group[1:-1].split("|")
    if "" in tokens:
        raise _bad(f"empty edge token in node {node} group {quote(group)} (two '|' in a row?)")
    if len(tokens) != node:
        raise _bad(
            f"node {node} needs exactly {node} incoming edge(s) (inputs "
            f"{', '.join(f'~{j}' for j in range(node))}), got {len(tokens)} in {quote(group)}"
        )
    edges = [_parse_edge(token, node) for token in tokens]
    seen: dict[int, str] = {}
    for (_, index), token in zip(edges, tokens):
        if index in seen:
            raise _bad(
                f"node {node} has input ~{index} twice ({quote(seen[index])} and {quote(token)})"
            )
        seen[index] = token
    return tuple(sorted(edges, key=lambda edge: edge[1]))


def parse_arch_string(spec: Any) -> Payload:
    """Validate an NB201 string; edges may come in any order inside a node (they get sorted)."""
    if not isinstance(spec, str):
        raise _bad(f"expected a string, got {type(spec).__name__}")
    if spec == "":
        raise _bad("empty architecture string; expected e.g. " + Nb201Grammar.example)
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


def cell_string(ops: Sequence[str]) -> str:
    """The cell string of six edge ops in string order (see EDGES)."""
    nodes = [[f"{ops[k]}~{j}" for k, (j, i) in enumerate(EDGES) if i == target]
             for target in range(1, NUM_NODES)]
    return "+".join("|" + "|".join(node) + "|" for node in nodes)


def cell_at(index: int) -> str:
    """The index-th cell (0 <= index < SIZE) in a fixed enumeration: base-5 digits over the six
    edges in string order. Not NAS-Bench-201's own index: only used to sample uniformly."""
    ops = []
    for _ in EDGES:
        index, digit = divmod(index, len(OPS))
        ops.append(OPS[digit])
    return cell_string(ops)


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


def edges(payload: Payload) -> list[Edge]:
    """Every edge of the cell, sorted by target node."""
    return [(j, i, op) for i, node in enumerate(payload, start=1) for op, j in node]


def reachable_from_input(payload: Payload) -> set[int]:
    """Nodes that depend on the cell input through non-`none` edges (edges point forward)."""
    reached = {0}
    for j, i, op in edges(payload):  # sorted by target, so sources are settled first
        if op != "none" and j in reached:
            reached.add(i)
    return reached


def reaches_output(payload: Payload) -> set[int]:
    """Nodes from which the output node can be reached through non-`none` edges."""
    reaching = {OUTPUT_NODE}
    for j, i, op in sorted(edges(payload), key=lambda edge: -edge[1]):
        if op != "none" and i in reaching:
            reaching.add(j)
    return reaching


def live_edges(payload: Payload) -> tuple[Edge, ...]:
    """Edges that can influence the cell output: non-`none`, fed by the input, feeding node 3."""
    forward, backward = reachable_from_input(payload), reaches_output(payload)
    return tuple(
        (j, i, op)
        for j, i, op in edges(payload)
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


class Nb201Grammar(Grammar):
    """NAS-Bench-201 cells (15,625 architectures)."""

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
        """Every edge a 3x3 conv (the size caps check it once per class count and resolution)."""
        return self.parse(LARGEST, num_classes, input_resolution)

    def sample(self, rng: random.Random) -> str:
        """Uniform cells: every edge's op uniform."""
        return cell_string([rng.choice(OPS) for _ in EDGES])

    def mutate(self, spec: Any, rng: random.Random) -> str:
        """One edge's op changed to another (NAS-Bench-201's REA)."""
        ops = [op for node in parse_arch_string(spec) for op, _ in node]
        edge = rng.randrange(len(EDGES))
        ops[edge] = other_choice(rng, OPS, ops[edge])
        return cell_string(ops)


LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+" \
          "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
GRAMMAR = Nb201Grammar()
