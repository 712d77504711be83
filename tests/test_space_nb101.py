"""NB-101 space: parsing and pruning, NB-101's graph hash, the network against published counts.

Published figures:
- Hash 00005c142e6f48ac74fdcf73e3439874 with 8,555,530 trainable parameters: microsoft/nni
  docs/en_US/NAS/BenchmarksExample.ipynb (query_nb101_trial_stats prints the arch as per-vertex
  inputs, 'hash' and 'parameters': 8.55553, i.e. millions) and a dump of the NB-101 dataset's first
  record with matrix, ops, 'hash_' and 'n_params': 8555530 (the first row of 423,624, quoted in a
  CTNAS reader script).
- The Inception-like cell of the nasbench README: 2,694,282 trainable parameters, and the dataset
  stores it under another vertex order (google-research/nasbench NASBench.ipynb, "Basic usage":
  `nasbench.query(cell)` prints module_adjacency, module_operations and trainable_parameters).
- compute_vertex_channels cases: google-research/nasbench nasbench/tests/model_builder_test.py.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import assert_onnx_matches_torch, randomize_batchnorm
from torch import nn

from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces.nb101 import SPACE, Nb101Network, vertex_channels

IN, OUT = "input", "output"
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

FIRST_ROW = {  # the dataset's first record (see the module docstring)
    "adjacency": [
        [0, 1, 0, 0, 1, 1, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": [IN, C3, MP, C3, C3, C1, OUT],
}
FIRST_ROW_HASH = "00005c142e6f48ac74fdcf73e3439874"
INCEPTION = {  # as written in the nasbench README
    "adjacency": [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": [IN, C1, C3, C3, C3, MP, OUT],
}
INCEPTION_STORED = {  # the same cell as the dataset returns it (NASBench.ipynb)
    "adjacency": [
        [0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": [IN, C3, C1, MP, C3, C3, OUT],
}
SMALL = {"adjacency": [0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], "ops": [IN, C1, MP, OUT]}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def flat(spec: dict) -> dict:
    return {"adjacency": [v for row in spec["adjacency"] for v in row], "ops": spec["ops"]}


def permute(spec: dict, order: list[int]) -> dict:
    """The same graph with new vertex i = old vertex order[i]."""
    old = spec["adjacency"]
    matrix = [[old[a][b] for b in order] for a in order]
    assert all(not matrix[r][c] for r in range(len(order)) for c in range(r + 1)), "not a DAG order"
    return {"adjacency": matrix, "ops": [spec["ops"][v] for v in order]}


def test_first_row_hash_and_parameters() -> None:
    arch = SPACE.parse(FIRST_ROW)
    assert arch.canonical == FIRST_ROW_HASH
    assert SPACE.parse(flat(FIRST_ROW)).canonical == FIRST_ROW_HASH
    assert n_params(SPACE.build(arch)) == 8_555_530


def test_inception_parameters_and_stored_form() -> None:
    readme, stored = SPACE.parse(INCEPTION), SPACE.parse(INCEPTION_STORED)
    assert readme.canonical == stored.canonical
    assert n_params(SPACE.build(readme)) == n_params(SPACE.build(stored)) == 2_694_282


def test_isomorphic_specs_share_the_hash() -> None:
    # Vertex 4 reads only the input, so it may come first among the interior vertices.
    moved = permute(FIRST_ROW, [0, 4, 1, 2, 3, 5, 6])
    assert moved["adjacency"] != FIRST_ROW["adjacency"]
    assert SPACE.parse(moved).canonical == FIRST_ROW_HASH
    swapped = permute(INCEPTION, [0, 2, 1, 5, 3, 4, 6])
    assert SPACE.parse(swapped).canonical == SPACE.parse(INCEPTION).canonical
    other_op = {"adjacency": FIRST_ROW["adjacency"], "ops": [IN, C3, MP, C3, C1, C1, OUT]}
    assert SPACE.parse(other_op).canonical != FIRST_ROW_HASH


def test_unreachable_vertices_are_pruned() -> None:
    base = SPACE.parse(SMALL)
    # Vertex 3 hangs off the input and feeds nothing; vertex 4 feeds the output but reads nothing.
    padded = {
        "adjacency": [
            [0, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
        "ops": [IN, C1, MP, C3, C3, OUT],
    }
    arch = SPACE.parse(padded)
    assert arch.canonical == base.canonical and arch.payload == base.payload
    assert arch.payload == (((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)),
                            (IN, C1, MP, OUT))
    assert n_params(SPACE.build(arch)) == n_params(SPACE.build(base))


def test_edge_limit_counts_after_pruning() -> None:
    # 10 edges as given, but the five into vertex 5 are dead (5 feeds nothing): valid in NB-101.
    matrix = [[0] * 7 for _ in range(7)]
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6)] + [(v, 5) for v in range(5)]:
        matrix[a][b] = 1
    arch = SPACE.parse({"adjacency": matrix, "ops": [IN, C3, C3, C3, C3, C3, OUT]})
    assert sum(map(sum, arch.payload[0])) == 5
    full = [[1 if c > r else 0 for c in range(7)] for r in range(7)]  # 21 live edges
    with pytest.raises(InvalidArgument, match="at most 9") as info:
        SPACE.parse({"adjacency": full, "ops": [IN, C3, C3, C3, C3, C3, OUT]})
    assert info.value.field == "arch.nb101.adjacency"


def test_input_only_to_output_is_a_valid_cell() -> None:
    arch = SPACE.parse({"adjacency": [[0, 1], [0, 0]], "ops": [IN, OUT]})
    net = SPACE.build(arch)
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize(
    ("matrix", "c_in", "c_out", "expected"),
    [
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 16, [8, 16, 16, 16]),
        ([[0, 1], [0, 0]], 5, 1, [5, 1]),
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 15, [8, 8, 7, 15]),
        ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], 8, 8,
         [8, 3, 3, 2, 8]),
        ([[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], 8, 9,
         [8, 5, 5, 4, 9]),
        ([[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5], 8, 15,
         [8, 8, 7, 7, 15]),
    ],
)
def test_vertex_channels_match_nasbench_tests(
    matrix: list, c_in: int, c_out: int, expected: list
) -> None:
    assert vertex_channels(c_in, c_out, tuple(map(tuple, matrix))) == expected


BAD_SPECS = [
    (None, "arch.nb101"),
    ("{}", "arch.nb101"),
    (b"spec", "arch.nb101"),
    ([FIRST_ROW], "arch.nb101"),
    ({}, "arch.nb101"),
    ({"adjacency": FIRST_ROW["adjacency"]}, "arch.nb101"),
    ({**FIRST_ROW, "hash": "x"}, "arch.nb101"),
    ({"matrix": FIRST_ROW["adjacency"], "ops": FIRST_ROW["ops"]}, "arch.nb101"),
    ({**FIRST_ROW, "ops": None}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": "input,output"}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN] + [C3] * 6 + [OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [C3] * 1_000_000}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN, C3, MP, C3, C3, 5, OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [C3, C3, MP, C3, C3, C1, OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN, C3, MP, C3, C3, C1, C3]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN, C3, IN, C3, C3, C1, OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN, C3, "conv5x5-bn-relu", C3, C3, C1, OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "ops": [IN, C3, "x" * 100_000, C3, C3, C1, OUT]}, "arch.nb101.ops"),
    ({**FIRST_ROW, "adjacency": None}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": "0110"}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": [0] * 1_000_000}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": [0] * 48}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": FIRST_ROW["adjacency"][:6]}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": [row[:6] for row in FIRST_ROW["adjacency"]]},
     "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": [[[0]] * 7] * 7}, "arch.nb101.adjacency"),
    ({**FIRST_ROW, "adjacency": [0, [0] * 7] + [[0] * 7] * 5}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, True] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, 1.0] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, 2] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, -1] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, 10**10000] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [0, None] + SMALL["adjacency"][2:]}, "arch.nb101.adjacency"),
    ({**SMALL, "adjacency": [1] + SMALL["adjacency"][1:]}, "arch.nb101.adjacency"),  # self-loop
    ({**SMALL, "adjacency": SMALL["adjacency"][:4] + [1] + SMALL["adjacency"][5:]},
     "arch.nb101.adjacency"),  # 1 -> 0, below the diagonal
    ({"adjacency": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": [IN, C3, OUT]},
     "arch.nb101.adjacency"),  # input and output disconnected
    ({"adjacency": [[0, 0], [0, 0]], "ops": [IN, OUT]}, "arch.nb101.adjacency"),
]


@pytest.mark.parametrize(("spec", "field"), BAD_SPECS)
def test_bad_specs_name_their_field(spec: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(spec)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_classes": -1}, "arch.num_classes"),
        ({"num_classes": 100_001}, "arch.num_classes"),
        ({"num_classes": True}, "arch.num_classes"),
        ({"num_classes": None}, "arch.num_classes"),
        ({"input_resolution": 4}, "arch.input_resolution"),
        ({"input_resolution": 1025}, "arch.input_resolution"),
        ({"input_resolution": "32"}, "arch.input_resolution"),
    ],
)
def test_bad_sizes_name_their_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(SMALL, **kwargs)
    assert info.value.field == field


def test_example_and_defaults() -> None:
    arch = SPACE.parse(json.loads(SPACE.example))
    assert arch.canonical == FIRST_ROW_HASH
    assert (arch.num_classes, arch.input_resolution, arch.input_shape) == (10, 32, (3, 32, 32))
    assert SPACE.network_variants == ("default",)


def test_network_layout_and_forward() -> None:
    arch = SPACE.parse(SMALL)
    net = SPACE.build(arch)
    assert net.stem.conv.out_channels == 128 and net.stem.conv.bias is None
    assert net.classifier.in_features == 512 and net.classifier.bias is not None
    assert sum(isinstance(m, nn.MaxPool2d) and m.kernel_size == 2 for m in net.cells) == 2
    cell = net.cells[0]  # 128 -> 128 split over the two vertices feeding the output
    assert cell.channels == [128, 64, 64, 128]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    odd = SPACE.parse(SMALL, num_classes=100, input_resolution=9)  # 'same' pooling: 9 -> 5 -> 3
    assert SPACE.build(odd, "default")(torch.randn(2, 3, 9, 9)).shape == (2, 100)
    with pytest.raises(ValueError, match="variant"):
        SPACE.build(arch, "zero_cost_nas")


def test_full_size_forward() -> None:
    arch = SPACE.parse(FIRST_ROW)
    assert SPACE.build(arch)(torch.randn(2, *arch.input_shape)).shape == (2, 10)


def test_builds_on_meta_device() -> None:
    arch = SPACE.parse(FIRST_ROW)
    with torch.device("meta"):
        net = SPACE.build(arch)
    assert all(p.is_meta for p in net.parameters()) and n_params(net) == 8_555_530


def test_build_exportable_is_an_equal_copy() -> None:
    arch = SPACE.parse(SMALL, input_resolution=16)
    net = SPACE.build(arch).eval()
    exportable = SPACE.build_exportable(arch, net)
    assert exportable is not net and isinstance(exportable, Nb101Network)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(exportable(x), net(x))
    with pytest.raises(TypeError):
        SPACE.build_exportable(arch, nn.Linear(2, 2))


def _single_change(parent: dict, child: dict) -> bool:
    edges = sum(a != b for a, b in zip(parent["adjacency"], child["adjacency"]))
    ops = sum(a != b for a, b in zip(parent["ops"], child["ops"]))
    return edges + ops == 1


def test_sample_and_mutate() -> None:
    rng = random.Random(0)
    samples = [SPACE.sample(rng) for _ in range(100)]
    hashes = set()
    for spec in samples:
        assert set(spec) == {"adjacency", "ops"} and len(spec["adjacency"]) == 49
        json.dumps(spec)  # JSON-able, as clients send it
        hashes.add(SPACE.parse(spec).canonical)
    # NB-101's sampler favours small pruned cells (about 1 draw in 10 is the bare input -> output
    # cell), so repeats are common; still, most draws differ.
    assert len(hashes) > 50
    for spec in samples[:50]:
        child = SPACE.mutate(spec, rng)
        assert SPACE.parse(child).canonical != SPACE.parse(spec).canonical
        assert _single_change(spec, child)
    # Nested input is accepted; the child comes back in the flat (proto) form.
    child = SPACE.mutate(FIRST_ROW, rng)
    assert SPACE.parse(child).canonical != FIRST_ROW_HASH and _single_change(flat(FIRST_ROW), child)
    # No single change of a bare input -> output cell is valid and new: falls back to a sample.
    bare = {"adjacency": [0, 1, 0, 0], "ops": [IN, OUT]}
    assert SPACE.parse(SPACE.mutate(bare, rng)).canonical != SPACE.parse(bare).canonical
    with pytest.raises(InvalidArgument):
        SPACE.mutate({"adjacency": [0], "ops": [IN]}, rng)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, on purpose
def test_onnx_export_matches_torch() -> None:
    torch.manual_seed(0)
    arch = SPACE.parse(FIRST_ROW)
    net = SPACE.build_exportable(arch, SPACE.build(arch)).eval()
    generator = torch.Generator().manual_seed(1)
    randomize_batchnorm(net, generator)
    assert_onnx_matches_torch(net, torch.randn(2, *arch.input_shape, generator=generator))


def test_random_near_misses_raise_only_invalid_argument() -> None:
    rng = random.Random(3)
    noise = [0, 1, 2, -1, True, None, 1.0, [0], "1"]
    interior = [C3, C1, MP, IN, OUT, "conv5x5"]
    valid = 0
    for _ in range(3000):
        n = rng.randrange(1, 9)
        adjacency = [rng.choice(noise) if rng.random() < 0.03 else int(c > r and rng.random() < 0.4)
                     for r in range(n) for c in range(n)]
        ops = [IN] + [rng.choice(interior) if rng.random() < 0.1 else rng.choice([C3, C1, MP])
                      for _ in range(n - 2)] + [OUT]
        try:
            arch = SPACE.parse({"adjacency": adjacency, "ops": ops})
        except InvalidArgument as error:
            assert error.field.startswith("arch.nb101")
        else:
            valid += 1
            assert SPACE.parse(flat({"adjacency": [list(r) for r in arch.payload[0]],
                                     "ops": list(arch.payload[1])})).canonical == arch.canonical
    assert valid > 100
