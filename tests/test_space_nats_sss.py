"""NATS-Bench SSS space: parsing, the network against the benchmark's parameter counts, search ops.

Published parameter counts (NATS-Bench `get_cost_info(index, dataset)["params"]`, in millions with
six decimals, so exact integers here):
- D-X-Y/NATS-Bench fake_torch_dir/NATS-sss-v1_0-50262-simple/{000000,000011,000284}.pickle.pbz2:
  the API's own test fixtures (simple records of archs 0, 11 and 284) hold "params" per dataset;
  cifar10 has 10 classes, cifar100 100, ImageNet16-120 120.
- D-X-Y/NATS-Bench notebooks/create-query-sss.ipynb (`get_cost_info(12, 'cifar10')` -> 0.067378)
  and notebooks/issue-21.ipynb (arch 12 is '8:8:8:16:40'; count_parameters_in_MB of the network
  built by get_cell_based_tiny_net prints 0.067378).
Reading the channels as the NATS-Bench README describes them (c0 stem, c1 first cell stage, c2
first residual block, ...) would give 75,234 for 8:8:8:16:32 instead of 49,202; the code's reading
(see server/spaces/nats_sss.py) matches all of these.
"""

from __future__ import annotations

import random

import pytest
import torch
from conftest import assert_onnx_matches_torch, randomize_batchnorm
from torch import nn

from edgescore.grammar.nats_sss import CANDIDATES
from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces.nats_sss import SPACE, ShapeTinyNetwork, SkipProjection


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("arch", "num_classes", "expected"),
    [
        ("8:8:8:8:8", 10, 11_714),  # index 0, cifar10 (fake_torch_dir 000000)
        ("8:8:8:8:8", 100, 12_524),  # index 0, cifar100
        ("8:8:8:16:32", 10, 49_202),  # index 11, cifar10 (fake_torch_dir 000011)
        ("8:8:8:16:32", 100, 52_172),  # index 11, cifar100
        ("8:8:8:16:32", 120, 52_832),  # index 11, ImageNet16-120
        ("8:8:40:32:40", 10, 144_834),  # index 284, cifar10 (fake_torch_dir 000284)
        ("8:8:40:32:40", 120, 149_344),  # index 284, ImageNet16-120
        ("8:8:8:16:40", 10, 67_378),  # index 12, cifar10 (create-query-sss / issue-21 notebooks)
    ],
)
def test_param_count_matches_nats_bench(arch: str, num_classes: int, expected: int) -> None:
    assert n_params(SPACE.build(SPACE.parse(arch, num_classes=num_classes))) == expected


def test_largest_param_count_by_hand() -> None:
    # 64:64:64:64:64 (no published figure found), from the layer shapes:
    #   stem        conv 3*64*9 = 1,728 + BN 128                                 =   1,856
    #   3 cells     5 convs 3x3 each (64*64*9 = 36,864 + BN 128), skip = identity = 554,880
    #   2 blocks    2 ReLUConvBN (36,992 each) + 1x1 shortcut 64*64 = 4,096       = 156,160
    #   lastact BN 128, classifier 64*10 + 10 = 650                              =     778
    assert n_params(SPACE.build(SPACE.parse("64:64:64:64:64"))) == 713_674


def test_widening_any_layer_adds_parameters() -> None:
    base = n_params(SPACE.build(SPACE.parse("32:32:32:32:32")))
    for layer in range(5):
        wider = [32] * 5
        wider[layer] = 40
        assert n_params(SPACE.build(SPACE.parse(wider))) > base


def test_channel_placement_follows_the_code() -> None:
    net = SPACE.build(SPACE.parse("8:16:24:32:40"))
    assert net.stem.conv.out_channels == 8
    assert [type(c).__name__ for c in net.cells] == [
        "ShapeCell", "ResNetBasicBlock", "ShapeCell", "ResNetBasicBlock", "ShapeCell"
    ]
    assert type(net.cells[0].edges["0_to_3"]) is nn.Identity  # 8 -> 8: a plain skip
    assert net.cells[1].conv_a.conv.in_channels == 8 and net.cells[1].conv_b.conv.out_channels == 16
    cell = net.cells[2]  # 16 -> 24: edges from node 0 change width, the skip becomes a 1x1 conv
    first = cell.edges["0_to_1"].conv
    assert (first.in_channels, first.out_channels) == (16, 24)
    assert cell.edges["1_to_2"].conv.in_channels == 24
    assert isinstance(cell.edges["0_to_3"], SkipProjection)
    assert not any(isinstance(m, nn.ReLU) for m in cell.edges["0_to_3"].modules())
    assert net.cells[4].edges["2_to_3"].conv.out_channels == 40 and net.classifier.in_features == 40


def test_parse_forms_defaults_and_canonical() -> None:
    arch = SPACE.parse("8:16:24:32:40")
    assert (arch.canonical, arch.payload, arch.num_classes, arch.input_resolution) == (
        "8:16:24:32:40", (8, 16, 24, 32, 40), 10, 32
    )
    assert SPACE.parse([8, 16, 24, 32, 40]).arch_hash == arch.arch_hash
    assert SPACE.parse("08:16:24:32:40").canonical == "8:16:24:32:40"
    assert SPACE.parse(SPACE.example).canonical == SPACE.example
    assert SPACE.network_variants == ("default",)


@pytest.mark.parametrize(
    "spec",
    [
        None, 64, 1.5, b"64:64:64:64:64", {"channels": "64:64:64:64:64"}, "", "64:64:64:64",
        "64:64:64:64:64:64", "64:64:64:64:65", "0:64:64:64:64", "-8:64:64:64:64",
        " 64:64:64:64:64", "64:64:64:64:64\n", "64::64:64:64", "64:64:64:64:0x40",
        "64.0:64:64:64:64", "\u0666\u0664:64:64:64:64", "9" * 40 + ":64:64:64:64", "x" * 5000,
        ":".join(["64"] * 600), [64] * 4, [64] * 1_000_000, [True] * 5, [64, 64, 64, 64, 64.0],
        [64, 64, 64, 64, None], ["64"] * 5, [[64]] * 5, [10**10000] * 5, [-64] * 5, (72,) * 5,
    ],
)
def test_bad_specs_raise_invalid_argument(spec: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(spec)
    assert info.value.field == "arch.nats_sss"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_classes": -1}, "arch.num_classes"),
        ({"num_classes": 100_001}, "arch.num_classes"),
        ({"num_classes": True}, "arch.num_classes"),
        ({"num_classes": "10"}, "arch.num_classes"),
        ({"num_classes": None}, "arch.num_classes"),
        ({"input_resolution": 4}, "arch.input_resolution"),
        ({"input_resolution": 2048}, "arch.input_resolution"),
        ({"input_resolution": 34}, "arch.input_resolution"),  # not a multiple of 4
        ({"input_resolution": 32.0}, "arch.input_resolution"),
    ],
)
def test_bad_sizes_name_their_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse("64:64:64:64:64", **kwargs)
    assert info.value.field == field


def test_forward_shapes() -> None:
    arch = SPACE.parse("8:16:24:32:40")
    net = SPACE.build(arch)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    arch = SPACE.parse("8:16:24:32:40", num_classes=100, input_resolution=12)
    assert SPACE.build(arch, "default")(torch.randn(2, *arch.input_shape)).shape == (2, 100)
    with pytest.raises(ValueError, match="variant"):
        SPACE.build(arch, "zero_cost_nas")


def test_builds_on_meta_device() -> None:
    arch = SPACE.parse("64:64:64:64:64")
    with torch.device("meta"):
        net = SPACE.build(arch)
    assert all(p.is_meta for p in net.parameters())
    assert n_params(net) == 713_674


def test_build_exportable_is_an_equal_copy() -> None:
    arch = SPACE.parse("8:16:24:32:40")
    net = SPACE.build(arch).eval()
    exportable = SPACE.build_exportable(arch, net)
    assert exportable is not net and isinstance(exportable, ShapeTinyNetwork)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(exportable(x), net(x))
    assert isinstance(SPACE.build_exportable(arch), ShapeTinyNetwork)
    with pytest.raises(TypeError):
        SPACE.build_exportable(arch, nn.Linear(2, 2))


def test_sample_and_mutate() -> None:
    rng = random.Random(0)
    samples = [SPACE.sample(rng) for _ in range(100)]
    for spec in samples:
        assert isinstance(spec, str) and SPACE.parse(spec).canonical == spec
    assert len(set(samples)) > 90  # 32,768 archs: repeats in 100 draws are rare
    seen_values = {int(c) for spec in samples for c in spec.split(":")}
    assert seen_values == set(CANDIDATES)
    for spec in samples[:50]:
        child = SPACE.mutate(spec, rng)
        assert SPACE.parse(child).canonical == child != spec
        assert sum(a != b for a, b in zip(spec.split(":"), child.split(":"))) == 1
    assert SPACE.mutate([64] * 5, rng) != "64:64:64:64:64"
    with pytest.raises(InvalidArgument):
        SPACE.mutate("64:64", rng)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, on purpose
def test_onnx_export_matches_torch() -> None:
    torch.manual_seed(0)
    arch = SPACE.parse("16:24:32:40:48")
    net = SPACE.build_exportable(arch, SPACE.build(arch)).eval()
    randomize_batchnorm(net, torch.Generator().manual_seed(1))
    x = torch.randn(2, *arch.input_shape, generator=torch.Generator().manual_seed(2))
    assert_onnx_matches_torch(net, x)


def test_random_near_misses_raise_only_invalid_argument() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        text = "".join(rng.choice("0123456789::-. x8") for _ in range(rng.randrange(20)))
        values = [rng.choice([8, 64, 0, 7, 72, -8, True, None, "8", 8.0]) for _ in range(5)]
        for spec in (text, values[: rng.randrange(7)]):
            try:
                arch = SPACE.parse(spec)
            except InvalidArgument as error:
                assert error.field == "arch.nats_sss"
            else:
                assert SPACE.parse(arch.canonical).payload == arch.payload
