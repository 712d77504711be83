"""Architecture features for the latency predictor (NB201), from the live (pruned) cell.

Latency is measured on the exportable network, where `none` edges and edges that cannot reach
the cell output are gone, so structure features count live edges. MACs and parameters are those
of that pruned network, taken from the real builder: NB201 cells add one fixed cost per live
edge of a given op (every edge of a stage has the same shape), so the builder is run once per op
type (a "unit table" per class count and resolution) and each arch's totals are sums over its
live edges, exact and without building 15,625 networks. `test_scoring` checks this against a
direct count.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Union

import torch

from edgescore.grammar.nb201 import (
    OPS,
    OUTPUT_NODE,
    live_edges,
    reachable_from_input,
    reaches_output,
)
from edgescore.server.proxies.flops import count_macs
from edgescore.server.scoring.graph_features import longest_paths
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.spaces.nb201 import CELLS_PER_STAGE, SPACE, STEM_CHANNELS

LIVE_OPS = tuple(op for op in OPS if op != "none")
BYTES_PER_ELEMENT = 4  # float32 activations
# Activation passes per live op in one cell, in units of one feature map: ReLU, conv and BN each
# read and write it (6); pooling reads and writes (2); skip is free; each extra input summed into
# a node reads two maps and writes one (3, see `adds`).
_PASSES = {"skip_connect": 0, "nor_conv_1x1": 6, "nor_conv_3x3": 6, "avg_pool_3x3": 2}


def _single_edge_cell(op: str) -> str:
    """A cell whose only live edge is input -> output with `op` (all others `none`)."""
    return f"|none~0|+|none~0|none~1|+|{op}~0|none~1|none~2|"


def _macs_params(spec: str, num_classes: int, resolution: int) -> tuple[int, int]:
    arch = SPACE.parse(spec, num_classes, resolution)
    # The cells used here have no dead non-`none` edge, so the reference network has the same
    # MACs and parameters as the pruned one, without pruning's deep copy. Built on the meta
    # device: shapes are all it needs, and a real build draws its weights from the global RNG,
    # which this (run from the fleet's threads when a measurement arrives) would do in the
    # middle of a proxy computation's seeded build, changing that proxy's value.
    with torch.device("meta"):
        network = SPACE.build(arch)
    params = sum(p.numel() for p in network.parameters() if p.requires_grad)
    return count_macs(network, arch.input_shape, device="meta"), params


@lru_cache(maxsize=8)
def unit_table(num_classes: int, resolution: int) -> dict[str, tuple[int, int]]:
    """(MACs, params) of the network without any live cell edge ("base"), and what one live edge
    of each op adds across all cells of the network."""
    base = _macs_params("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", num_classes,
                        resolution)
    table = {"base": base}
    for op in LIVE_OPS:
        macs, params = _macs_params(_single_edge_cell(op), num_classes, resolution)
        table[op] = (macs - base[0], params - base[1])
    return table


def _stage_elements(resolution: int) -> list[int]:
    """Elements of one feature map in each of the three stages (channels double, size halves)."""
    return [STEM_CHANNELS * 2**s * (resolution // 2**s) ** 2 for s in range(3)]


def nb201_features(arch: Union[str, ParsedArch]) -> dict[str, float]:
    """Features of one NB201 cell (string or parsed): live op counts, structure, MACs (M),
    params (M), an activation-traffic estimate (MB), plus counts of dead edges by kind."""
    if isinstance(arch, str):
        arch = SPACE.parse(arch)
    return dict(_features(arch.canonical, arch.num_classes, arch.input_resolution))


@lru_cache(maxsize=32768)  # the whole space fits: features are pure functions of the cell
def _features(canonical: str, num_classes: int, resolution: int) -> tuple[tuple[str, float], ...]:
    payload = SPACE.parse(canonical).payload
    live = live_edges(payload)
    table = unit_table(num_classes, resolution)
    features: dict[str, float] = {f"live_{op}": 0.0 for op in LIVE_OPS}
    # Runtimes that do not prune still run dead edges: edges on real data that feed nothing
    # (`fed_*`) and edges on an all-zero node that still feed the output (`feeding_*`).
    fed, feeding = reachable_from_input(payload), reaches_output(payload)
    for op in LIVE_OPS:
        edges = [(j, i) for i, node in enumerate(payload, start=1) for o, j in node if o == op]
        features[f"all_{op}"] = float(len(edges))
        features[f"fed_{op}"] = float(sum(j in fed for j, _ in edges))
        features[f"feeding_{op}"] = float(sum(i in feeding for _, i in edges))
    in_degree: dict[int, int] = {}
    for _, i, op in live:
        features[f"live_{op}"] += 1
        in_degree[i] = in_degree.get(i, 0) + 1
    adds = sum(max(d - 1, 0) for d in in_degree.values())
    depth, conv_depth = longest_paths(live)
    macs = table["base"][0] + sum(table[op][0] for _, _, op in live)
    params = table["base"][1] + sum(table[op][1] for _, _, op in live)
    passes = sum(_PASSES[op] for _, _, op in live) + 3 * adds
    traffic = passes * sum(_stage_elements(resolution)) * CELLS_PER_STAGE * BYTES_PER_ELEMENT
    features.update(
        live_edges=float(len(live)),
        live_nodes=float(len({i for _, i, _ in live} - {OUTPUT_NODE})),
        adds=float(adds),
        depth=float(depth),
        conv_depth=float(conv_depth),
        degenerate=float(OUTPUT_NODE not in reachable_from_input(payload)),
        macs_m=macs / 1e6,
        params_m=params / 1e6,
        traffic_mb=traffic / 1e6,
    )
    return tuple(sorted(features.items()))
