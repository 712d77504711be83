"""ViT (AutoFormer-style) space: parsing, canonical form, AutoFormer-Tiny known point, export."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_onnx_matches_torch

from edgescore.grammar.vit import AUTOFORMER_TINY
from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces.vit import SPACE, VisionTransformer

# Per-layer heads that do not divide embed_dim (the attention is heads x 64 wide) and MLP ratios.
SMALL: dict[str, Any] = {"embed_dim": 40, "depth": 2, "num_heads": [4, 3],
                         "mlp_ratio": [2.5, 4.0], "patch_size": 8}


def spec_with(**change: Any) -> dict[str, Any]:
    return {**AUTOFORMER_TINY, **change}


def test_autoformer_tiny_known_point() -> None:
    # AutoFormer-Tiny (Chen et al., ICCV 2021): 5.7 M parameters in the paper, 5.8 M in the
    # microsoft/Cream README; this network omits its ~0.1 M relative-position tables.
    arch = SPACE.parse(AUTOFORMER_TINY)
    with torch.device("meta"):
        network = SPACE.build(arch)
    params = sum(p.numel() for p in network.parameters())
    assert params == 5_768_104
    assert 5.6e6 < params < 5.9e6
    assert network.blocks[10].attn.qkv.out_features == 3 * 4 * 64  # head dim 64, not 192 / 4


def test_example_is_the_canonical_autoformer_tiny() -> None:
    arch = SPACE.parse(json.loads(SPACE.example))
    assert arch.canonical == SPACE.example
    assert (arch.num_classes, arch.input_resolution) == (1000, 224)


def test_forward_shape() -> None:
    arch = SPACE.parse(SMALL, num_classes=5, input_resolution=32)
    network = SPACE.build(arch).eval()
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert network.pos_embed.shape == (1, 17, 40)  # 4 x 4 patches + the class token
    assert [b.mlp.fc1.out_features for b in network.blocks] == [100, 160]
    assert [b.attn.proj.in_features for b in network.blocks] == [256, 192]


def test_meta_device_build() -> None:
    arch = SPACE.parse(SMALL, input_resolution=64)
    with torch.device("meta"):
        network = SPACE.build(arch)
    assert all(p.is_meta for p in network.parameters())
    assert network(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 1000)


def test_canonical_fills_defaults_and_normalises_floats() -> None:
    sparse = {"embed_dim": 64, "num_heads": [2, 2, 2]}
    full = {"embed_dim": 64, "depth": 3, "num_heads": [2, 2, 2], "mlp_ratio": [4, 4.0, 4.0],
            "patch_size": 16}
    assert SPACE.parse(sparse).canonical == SPACE.parse(full).canonical
    assert SPACE.parse(sparse).arch_hash == SPACE.parse(full).arch_hash
    noisy = dict(full, mlp_ratio=[float(np.float32(3.3))] * 3)
    assert SPACE.parse(noisy).canonical == SPACE.parse(dict(full, mlp_ratio=[3.3] * 3)).canonical
    assert '"mlp_ratio":[3.3,3.3,3.3]' in SPACE.parse(noisy).canonical


BAD_SPECS = [
    (None, "arch.vit"),
    ([192, 13], "arch.vit"),
    ("embed_dim=192", "arch.vit"),
    (spec_with(embedDim=192), "arch.vit"),
    (spec_with(embed_dim=0), "arch.vit.embed_dim"),
    (spec_with(embed_dim=-192), "arch.vit.embed_dim"),
    (spec_with(embed_dim=4096), "arch.vit.embed_dim"),
    (spec_with(embed_dim=192.0), "arch.vit.embed_dim"),
    (spec_with(embed_dim="192"), "arch.vit.embed_dim"),
    (spec_with(embed_dim=None), "arch.vit.embed_dim"),
    (spec_with(depth=12), "arch.vit.num_heads"),  # 13 heads given
    (spec_with(depth=49, num_heads=[3] * 49), "arch.vit.num_heads"),  # list too long first
    (spec_with(depth=-1), "arch.vit.depth"),
    (spec_with(depth=True), "arch.vit.depth"),
    (spec_with(depth=0, num_heads=[]), "arch.vit.depth"),
    (spec_with(num_heads=[3] * 10**6), "arch.vit.num_heads"),
    (spec_with(num_heads=None), "arch.vit.num_heads"),
    (spec_with(num_heads=3), "arch.vit.num_heads"),
    (spec_with(num_heads=[3] * 12 + [0]), "arch.vit.num_heads[12]"),
    (spec_with(num_heads=[3] * 12 + [33]), "arch.vit.num_heads[12]"),
    (spec_with(num_heads=[3] * 12 + [3.0]), "arch.vit.num_heads[12]"),
    (spec_with(num_heads=[3] * 12 + [b"3"]), "arch.vit.num_heads[12]"),
    (spec_with(mlp_ratio=[4.0] * 12), "arch.vit.mlp_ratio"),
    (spec_with(mlp_ratio=[4.0] * 12 + [float("nan")]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + [float("-inf")]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + [0.0]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + [-4.0]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + [16.5]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + ["4"]), "arch.vit.mlp_ratio[12]"),
    (spec_with(mlp_ratio=[4.0] * 12 + [None]), "arch.vit.mlp_ratio[12]"),
    (spec_with(embed_dim=1, mlp_ratio=[4.0] * 12 + [0.1]), "arch.vit.mlp_ratio[12]"),
    (spec_with(patch_size=-16), "arch.vit.patch_size"),
    (spec_with(patch_size=65), "arch.vit.patch_size"),
    (spec_with(patch_size=False), "arch.vit.patch_size"),
]


@pytest.mark.parametrize("spec, field", BAD_SPECS)
def test_bad_specs_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(spec)
    assert info.value.field == field
    assert len(info.value.message) < 300


@pytest.mark.parametrize("spec, num_classes, resolution, field", [
    (AUTOFORMER_TINY, -1, 0, "arch.num_classes"),
    (AUTOFORMER_TINY, 100_001, 0, "arch.num_classes"),
    (AUTOFORMER_TINY, 1.5, 0, "arch.num_classes"),
    (AUTOFORMER_TINY, 0, 230, "arch.input_resolution"),  # not a multiple of 16
    (AUTOFORMER_TINY, 0, 8, "arch.input_resolution"),
    (AUTOFORMER_TINY, 0, 2048, "arch.input_resolution"),
    (AUTOFORMER_TINY, 0, "224", "arch.input_resolution"),
    (spec_with(patch_size=5), 0, 0, "arch.input_resolution"),  # 224 % 5
    (spec_with(patch_size=2), 0, 224, "arch.input_resolution"),  # 112 patches a side
])
def test_bad_classes_and_resolution(spec: Any, num_classes: Any, resolution: Any,
                                    field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SPACE.parse(spec, num_classes, resolution)
    assert info.value.field == field


def test_sample_and_mutate_give_valid_different_specs() -> None:
    rng = random.Random(0)
    canon = set()
    for _ in range(50):
        spec = SPACE.sample(rng)
        arch = SPACE.parse(spec)
        assert arch.payload.embed_dim in (192, 216, 240) and 12 <= arch.payload.depth <= 14
        canon.add(arch.canonical)
        mutated = SPACE.mutate(spec, rng)
        assert SPACE.parse(mutated).canonical != arch.canonical
    assert len(canon) == 50
    assert SPACE.parse(SPACE.mutate(SMALL, rng)).canonical != SPACE.parse(SMALL).canonical
    single = {"embed_dim": 8, "depth": 1, "num_heads": [1], "mlp_ratio": [1.0], "patch_size": 16}
    assert SPACE.parse(SPACE.mutate(single, rng)).canonical != SPACE.parse(single).canonical
    assert SPACE.sample(random.Random(3)) == SPACE.sample(random.Random(3))


def test_build_exportable_copies_and_matches_onnxruntime() -> None:
    torch.manual_seed(0)
    arch = SPACE.parse(SMALL, num_classes=10, input_resolution=32)
    network = SPACE.build(arch)
    exportable = SPACE.build_exportable(arch, network)
    assert isinstance(exportable, VisionTransformer) and exportable is not network
    assert_onnx_matches_torch(exportable.eval(), torch.randn(2, 3, 32, 32), rtol=1e-3)
    with pytest.raises(ValueError):
        SPACE.build(arch, "other")
