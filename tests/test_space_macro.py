"""Macro (MobileNet-style) space: parsing, canonical form, the MobileNetV2 known point, export."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_onnx_matches_torch
from torch import nn

from edgescore.grammar.macro import MOBILENET_V2
from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces.macro import SPACE, MacroNetwork

# A small arch exercising every block kind: no expand conv, SE, residual, stride 2, kernel 7.
SMALL: dict[str, Any] = {
    "stem_width": 8,
    "stages": [
        {"kernel": 3, "expansion": 1, "width": 8, "depth": 1, "stride": 1},
        {"kernel": 5, "expansion": 4, "width": 16, "depth": 2, "stride": 2,
         "squeeze_excitation": True},
        {"kernel": 7, "expansion": 3.5, "width": 24, "depth": 2, "stride": 2},
    ],
    "head_width": 64,
}


def with_stage(index: int, **change: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MOBILENET_V2)
    spec["stages"][index].update(change)
    return spec


def count_macs(network: nn.Module, resolution: int) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one image (what papers report)."""
    total = 0

    def hook(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            total += output[0].numel() * per_output
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in network.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        network.eval()(torch.zeros(1, 3, resolution, resolution))
    for handle in handles:
        handle.remove()
    return total


def test_mobilenet_v2_known_point() -> None:
    # torchvision.models.mobilenet_v2(weights=None) has 3,504,872 parameters and ~300 M MACs
    # (torchvision isn't installed here; its figures are from its model table and source).
    arch = SPACE.parse(MOBILENET_V2)
    with torch.device("meta"):
        meta_network = SPACE.build(arch)
    assert sum(p.numel() for p in meta_network.parameters()) == 3_504_872
    macs = count_macs(SPACE.build(arch), 224)
    assert abs(macs - 300e6) / 300e6 < 0.05, macs


def test_example_is_the_canonical_mobilenet_v2() -> None:
    arch = SPACE.parse(json.loads(SPACE.example))
    assert arch.canonical == SPACE.example
    assert (arch.num_classes, arch.input_resolution) == (1000, 224)


def test_forward_shape_and_residuals() -> None:
    arch = SPACE.parse(SMALL, num_classes=7, input_resolution=32)
    network = SPACE.build(arch).eval()
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    blocks = [block for stage in network.stages for block in stage]
    assert [b.residual for b in blocks] == [True, False, True, False, True]
    assert "expand" not in blocks[0].body._modules and "se" in blocks[1].body._modules


def test_meta_device_build() -> None:
    arch = SPACE.parse(SMALL)
    with torch.device("meta"):
        network = SPACE.build(arch)
    assert all(p.is_meta for p in network.parameters())
    assert network(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 1000)


def test_canonical_fills_defaults_and_normalises_floats() -> None:
    sparse = {"stages": [{"width": 16}, {"width": 24, "stride": 2, "expansion": 0}]}
    full = {
        "stem_width": 32, "head_width": 1280,
        "stages": [
            {"kernel": 3, "expansion": 6.0, "width": 16, "depth": 1, "stride": 1,
             "squeeze_excitation": False},
            {"kernel": 3, "expansion": 6, "width": 24, "depth": 1, "stride": 2,
             "squeeze_excitation": False},
        ],
    }
    assert SPACE.parse(sparse).canonical == SPACE.parse(full).canonical
    assert SPACE.parse(sparse).arch_hash == SPACE.parse(full).arch_hash
    # float32 noise from the wire (3.3 as a proto float) hashes like the decimal.
    noisy = SPACE.parse(with_stage(1, expansion=float(np.float32(3.3))))
    assert noisy.canonical == SPACE.parse(with_stage(1, expansion=3.3)).canonical
    assert '"expansion":3.3' in noisy.canonical


BAD_SPECS = [
    (None, "arch.macro"),
    ("stem_width: 32", "arch.macro"),
    (b"{}", "arch.macro"),
    ({"stemWidth": 32, "stages": [{"width": 8}]}, "arch.macro"),
    ({}, "arch.macro.stages"),
    ({"stages": []}, "arch.macro.stages"),
    ({"stages": "abc"}, "arch.macro.stages"),
    ({"stages": None}, "arch.macro.stages"),
    ({"stages": [{"width": 8}] * 10_000}, "arch.macro.stages"),
    ({"stages": [{"width": 8, "depth": 16}] * 5}, "arch.macro.stages"),  # 80 blocks
    ({"stages": [[8]]}, "arch.macro.stages[0]"),
    ({"stages": [{"width": 8, "colour": 1}]}, "arch.macro.stages[0]"),
    ({"stem_width": -1, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"stem_width": 2**70, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"stem_width": 10**5000, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"stem_width": 32.0, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"stem_width": True, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"stem_width": None, "stages": [{"width": 8}]}, "arch.macro.stem_width"),
    ({"head_width": "1280", "stages": [{"width": 8}]}, "arch.macro.head_width"),
    ({"head_width": 100_000, "stages": [{"width": 8}]}, "arch.macro.head_width"),
    (with_stage(2, kernel=4), "arch.macro.stages[2].kernel"),
    (with_stage(2, kernel=9), "arch.macro.stages[2].kernel"),
    (with_stage(2, kernel=-3), "arch.macro.stages[2].kernel"),
    (with_stage(2, kernel=3.0), "arch.macro.stages[2].kernel"),
    (with_stage(3, stride=3), "arch.macro.stages[3].stride"),
    (with_stage(4, width=0), "arch.macro.stages[4].width"),
    (with_stage(4, width=5000), "arch.macro.stages[4].width"),
    (with_stage(5, depth=17), "arch.macro.stages[5].depth"),
    (with_stage(5, depth=-1), "arch.macro.stages[5].depth"),
    (with_stage(1, expansion=float("nan")), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=float("inf")), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=0.5), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=-6.0), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=17), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=10**400), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion="6"), "arch.macro.stages[1].expansion"),
    (with_stage(1, expansion=True), "arch.macro.stages[1].expansion"),
    (with_stage(0, squeeze_excitation=1), "arch.macro.stages[0].squeeze_excitation"),
    (with_stage(0, squeeze_excitation=None), "arch.macro.stages[0].squeeze_excitation"),
]


@pytest.mark.parametrize("spec, field", BAD_SPECS)
def test_bad_specs_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(spec)
    assert info.value.field == field
    assert len(info.value.message) < 300


@pytest.mark.parametrize("num_classes, resolution, field", [
    (-1, 0, "arch.num_classes"), (100_001, 0, "arch.num_classes"), ("10", 0, "arch.num_classes"),
    (None, 0, "arch.num_classes"), (True, 0, "arch.num_classes"),
    (0, 31, "arch.input_resolution"), (0, 1025, "arch.input_resolution"),
    (0, 224.0, "arch.input_resolution"),
])
def test_bad_classes_and_resolution(num_classes: Any, resolution: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(MOBILENET_V2, num_classes, resolution)
    assert info.value.field == field


def test_sample_and_mutate_give_valid_different_specs() -> None:
    rng = random.Random(0)
    canon = set()
    for _ in range(50):
        spec = SPACE.sample(rng)
        arch = SPACE.parse(spec)
        canon.add(arch.canonical)
        mutated = SPACE.mutate(spec, rng)
        assert SPACE.parse(mutated).canonical != arch.canonical
    assert len(canon) == 50
    # Mutation also works from a spec outside the sampling distribution.
    assert SPACE.parse(SPACE.mutate(MOBILENET_V2, rng)).canonical != SPACE.example
    assert SPACE.sample(random.Random(3)) == SPACE.sample(random.Random(3))


def test_build_exportable_copies_and_matches_onnxruntime() -> None:
    torch.manual_seed(0)
    arch = SPACE.parse(SMALL, num_classes=10, input_resolution=32)
    network = SPACE.build(arch)
    exportable = SPACE.build_exportable(arch, network)
    assert isinstance(exportable, MacroNetwork) and exportable is not network
    assert_onnx_matches_torch(exportable.eval(), torch.randn(2, 3, 32, 32), rtol=1e-3)
    with pytest.raises(ValueError):
        SPACE.build(arch, "other")
