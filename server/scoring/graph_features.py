"""Cheap graph features of an NB201 cell for the few-label ranker (GRAF-style), without torch.

After Kadlecová et al., "Surprisingly Strong Performance Prediction with Neural Graph Features"
(ICML 2024): for every non-empty set S of the five ops (`none` included, as GRAF does: a cell
whose shortest all-op path is a `none` edge is a different cell from one with no edge there),
the shortest and the longest input->output path that uses only edges whose op is in S, how many
S-edges leave the input and enter the output, and how many edges of S there are. GRAF's average
in/out degrees are that count divided by the node count, so the count stands for both. Beside
those: op counts over all and over live edges (the latency predictor's notion: edges that can
influence the output), live input->output paths, those through a conv, and the most convs on
one path. All are pure functions of the cell string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import combinations

from edgescore.grammar.nb201 import (
    NUM_NODES,
    OPS,
    OUTPUT_NODE,
    Edge,
    canonical_payload,
    canonical_string,
    edges,
    live_edges,
    parse_arch_string,
)

# Short op names for column names.
_SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1",
          "nor_conv_3x3": "conv3", "avg_pool_3x3": "pool"}
_CONVS = frozenset({"nor_conv_1x1", "nor_conv_3x3"})
# Every non-empty op set, in a fixed order (31 for five ops).
OP_SETS: tuple[frozenset[str], ...] = tuple(
    frozenset(subset) for size in range(1, len(OPS) + 1) for subset in combinations(OPS, size))
# A shortest path no S-edges can make: longer than any real one (at most NUM_NODES - 1 edges).
NO_SHORTEST_PATH = float(NUM_NODES)
# A longest path no S-edges can make (GRAF's value: one below the empty path).
NO_LONGEST_PATH = -1.0


def _set_name(ops: frozenset[str]) -> str:
    return "+".join(_SHORT[op] for op in OPS if op in ops)


def longest_paths(cell_edges: Iterable[Edge]) -> tuple[int, int]:
    """Longest input->output path over `cell_edges` (sorted by target): in edges, and in conv
    edges; 0 when the output is not reached."""
    depth = {0: 0}
    convs = {0: 0}
    for j, i, op in cell_edges:  # sorted by target, so sources are final before use
        if j not in depth:
            continue
        depth[i] = max(depth.get(i, 0), depth[j] + 1)
        convs[i] = max(convs.get(i, 0), convs[j] + (op in _CONVS))
    return depth.get(OUTPUT_NODE, 0), convs.get(OUTPUT_NODE, 0)


def _shortest_path(cell_edges: Sequence[Edge]) -> float:
    """Fewest edges input->output over `cell_edges` (sorted by target); NO_SHORTEST_PATH if none."""
    dist = {0: 0}
    for j, i, _ in cell_edges:
        if j in dist:
            dist[i] = min(dist.get(i, NUM_NODES), dist[j] + 1)
    return float(dist.get(OUTPUT_NODE, NO_SHORTEST_PATH))


def _paths(cell_edges: Sequence[Edge]) -> list[list[str]]:
    """Every input->output path over `cell_edges`, as its ops (the cell has at most four)."""
    out: dict[int, list[Edge]] = {}
    for edge in cell_edges:
        out.setdefault(edge[0], []).append(edge)

    def walk(node: int) -> list[list[str]]:
        if node == OUTPUT_NODE:
            return [[]]
        return [[op, *rest] for _, i, op in out.get(node, []) for rest in walk(i)]

    return walk(0)


@lru_cache(maxsize=32768)  # the whole space fits
def _features(canonical: str) -> tuple[tuple[str, float], ...]:
    payload = parse_arch_string(canonical)
    every = edges(payload)
    live = live_edges(payload)
    features: dict[str, float] = {}
    for op in OPS:
        features[f"count[{_SHORT[op]}]"] = float(sum(o == op for _, _, o in every))
        if op != "none":
            features[f"live[{_SHORT[op]}]"] = float(sum(o == op for _, _, o in live))
    for ops in OP_SETS:
        name = _set_name(ops)
        chosen = [edge for edge in every if edge[2] in ops]
        longest, _ = longest_paths(chosen)
        features[f"min_path[{name}]"] = _shortest_path(chosen)
        features[f"max_path[{name}]"] = float(longest) if longest else NO_LONGEST_PATH
        features[f"out_degree_input[{name}]"] = float(sum(j == 0 for j, _, _ in chosen))
        features[f"in_degree_output[{name}]"] = float(sum(i == OUTPUT_NODE for _, i, _ in chosen))
        if len(ops) > 1:  # a single op's edge count is count[op] already
            features[f"edges[{name}]"] = float(len(chosen))
    paths = _paths(live)
    features["live_edges"] = float(len(live))
    features["live_paths"] = float(len(paths))
    features["conv_paths"] = float(sum(any(op in _CONVS for op in path) for path in paths))
    features["conv_depth"] = float(longest_paths(live)[1])
    return tuple(features.items())


def nb201_graph_features(arch: str) -> dict[str, float]:
    """GRAF-style features of one NB201 cell string (any spelling of an isomorphic cell gives
    the same features)."""
    return dict(_features(_canonical(arch)))


def _canonical(arch: str) -> str:
    return canonical_string(canonical_payload(parse_arch_string(arch)))


def feature_names() -> list[str]:
    """Column order of `nb201_graph_features`."""
    return list(nb201_graph_features("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
