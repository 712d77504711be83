"""AutoFormer-style vision transformer space: the spec (embed dim, depth, per-layer heads and MLP
ratio, patch size), its canonical JSON, sampling and mutation (the network:
edgescore.server.spaces.vit)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from edgescore.grammar.base import JsonGrammar, other_choice, pick_change
from edgescore.grammar.checks import (
    canonical_json,
    check_float,
    check_int,
    check_keys,
    check_list,
)
from edgescore.grammar.errors import SpecError

FIELD = "arch.vit"
HEAD_DIM = 64  # AutoFormer's per-head q/k/v width

# Caps bound parse and build work; far above AutoFormer-B (embed 640, depth 16, 10 heads).
EMBED_DIM_RANGE = (1, 2048)
DEPTH_RANGE = (1, 48)
NUM_HEADS_RANGE = (1, 32)
MLP_RATIO_RANGE = (0.0, 16.0)  # open at 0; round(ratio * embed_dim) must also be >= 1
PATCH_SIZE_RANGE = (1, 64)
RESOLUTION_RANGE = (16, 1024)  # and a multiple of patch_size
MAX_GRID = 64  # patches per side: at most 4,096 patch tokens (attention is quadratic in them)

DEFAULT_PATCH_SIZE = 16
DEFAULT_MLP_RATIO = 4.0  # ViT's, for every layer when mlp_ratio is empty

# AutoFormer-Tiny as released (microsoft/Cream AutoFormer/experiments/subnet/AutoFormer-T.yaml).
AUTOFORMER_TINY: dict[str, Any] = {
    "embed_dim": 192,
    "depth": 13,
    "num_heads": [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3],
    "mlp_ratio": [3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5],
    "patch_size": 16,
}

# The sampling distribution: AutoFormer-Tiny's search space (supernet-T.yaml), patch size 16.
SAMPLE_EMBED_DIMS = (192, 216, 240)
SAMPLE_DEPTHS = (12, 13, 14)
SAMPLE_NUM_HEADS = (3, 4)
SAMPLE_MLP_RATIOS = (3.5, 4.0)

SPEC_FIELDS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size")


@dataclass(frozen=True)
class VitArch:
    """The payload of a parsed ViT spec: every default filled in, ratios rounded."""

    embed_dim: int
    depth: int
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    patch_size: int

    def to_spec(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim, "depth": self.depth,
                "num_heads": list(self.num_heads), "mlp_ratio": list(self.mlp_ratio),
                "patch_size": self.patch_size}

    def mlp_hidden(self, layer: int) -> int:
        return int(round(self.mlp_ratio[layer] * self.embed_dim))


def parse_spec(spec: Any) -> VitArch:
    """Validate a ViT spec dict (VitSpec's field names); raise SpecError on any flaw.

    depth 0 takes len(num_heads); an empty mlp_ratio means DEFAULT_MLP_RATIO for every layer.
    """
    spec = check_keys(FIELD, spec, SPEC_FIELDS)
    embed_dim = check_int(f"{FIELD}.embed_dim", spec.get("embed_dim", 0), None, EMBED_DIM_RANGE)
    heads = check_list(f"{FIELD}.num_heads", spec.get("num_heads", []), DEPTH_RANGE[1])
    ratios = check_list(f"{FIELD}.mlp_ratio", spec.get("mlp_ratio", []), DEPTH_RANGE[1])
    depth = spec.get("depth", 0)
    if depth == 0 and not isinstance(depth, bool) and isinstance(depth, int):
        if not heads:
            raise SpecError(f"{FIELD}.depth", "missing, and num_heads is empty")
        depth = len(heads)
    depth = check_int(f"{FIELD}.depth", depth, None, DEPTH_RANGE)
    for name, values in (("num_heads", heads), ("mlp_ratio", ratios)):
        if len(values) != depth and not (name == "mlp_ratio" and not values):
            raise SpecError(f"{FIELD}.{name}", f"{len(values)} entries for depth {depth}; "
                            "give one per layer")
    num_heads = tuple(check_int(f"{FIELD}.num_heads[{i}]", h, None, NUM_HEADS_RANGE)
                      for i, h in enumerate(heads))
    mlp_ratio = tuple(check_float(f"{FIELD}.mlp_ratio[{i}]", r, None, MLP_RATIO_RANGE, True)
                      for i, r in enumerate(ratios)) or (DEFAULT_MLP_RATIO,) * depth
    for i, ratio in enumerate(mlp_ratio):
        if round(ratio * embed_dim) < 1:
            raise SpecError(f"{FIELD}.mlp_ratio[{i}]",
                            f"{ratio:g} x embed_dim {embed_dim} leaves no MLP hidden unit")
    patch = check_int(f"{FIELD}.patch_size", spec.get("patch_size", 0), DEFAULT_PATCH_SIZE,
                      PATCH_SIZE_RANGE)
    return VitArch(embed_dim, depth, num_heads, mlp_ratio, patch)


def check_resolution(value: Any, default: int, patch: int) -> int:
    resolution = check_int("arch.input_resolution", value, default, RESOLUTION_RANGE)
    if resolution % patch:
        raise SpecError("arch.input_resolution",
                        f"{resolution} is not a multiple of patch_size {patch}")
    if resolution // patch > MAX_GRID:
        raise SpecError("arch.input_resolution", f"{resolution} / patch_size {patch} "
                        f"gives {resolution // patch} patches a side, at most {MAX_GRID}")
    return resolution


def _mutations(arch: VitArch, rng: random.Random) -> list[VitArch]:
    """One candidate per mutable dimension, each a single local change."""
    candidates = [replace(arch, embed_dim=other_choice(rng, SAMPLE_EMBED_DIMS, arch.embed_dim))]
    depth = arch.depth + rng.choice((-1, 1))
    if depth > arch.depth:  # a new last layer, drawn from the sampling choices
        candidates.append(replace(arch, depth=depth,
                                  num_heads=arch.num_heads + (rng.choice(SAMPLE_NUM_HEADS),),
                                  mlp_ratio=arch.mlp_ratio + (rng.choice(SAMPLE_MLP_RATIOS),)))
    elif depth >= DEPTH_RANGE[0]:
        candidates.append(replace(arch, depth=depth, num_heads=arch.num_heads[:depth],
                                  mlp_ratio=arch.mlp_ratio[:depth]))
    layer = rng.randrange(arch.depth)
    heads, ratios = list(arch.num_heads), list(arch.mlp_ratio)
    heads[layer] = other_choice(rng, SAMPLE_NUM_HEADS, heads[layer])
    candidates.append(replace(arch, num_heads=tuple(heads)))
    ratios[layer] = other_choice(rng, SAMPLE_MLP_RATIOS, ratios[layer])
    candidates.append(replace(arch, mlp_ratio=tuple(ratios)))
    return candidates


class VitGrammar(JsonGrammar):
    """AutoFormer-style vision transformers (ImageNet defaults)."""

    name = "vit"
    description = (
        "AutoFormer-style vision transformer: patch embedding, class token, learned positions, "
        "pre-norm layers with per-layer heads (head dim 64) and MLP ratio, class-token head"
    )
    example = canonical_json(AUTOFORMER_TINY)
    fields = {
        "embed_dim": f"token width, {EMBED_DIM_RANGE[0]}..{EMBED_DIM_RANGE[1]} (required)",
        "depth": f"layers, {DEPTH_RANGE[0]}..{DEPTH_RANGE[1]}, 0 = len(num_heads)",
        "num_heads": f"one per layer, {NUM_HEADS_RANGE[0]}..{NUM_HEADS_RANGE[1]}; each head is "
                     f"{HEAD_DIM} wide, so heads need not divide embed_dim",
        "mlp_ratio": f"one per layer, in (0, {MLP_RATIO_RANGE[1]:g}], rounded to 4 decimals; "
                     f"MLP hidden = round(ratio * embed_dim); empty = {DEFAULT_MLP_RATIO:g} each",
        "patch_size": f"{PATCH_SIZE_RANGE[0]}..{PATCH_SIZE_RANGE[1]}, 0 = {DEFAULT_PATCH_SIZE}",
        "num_classes": "1..100000, 0 = 1000",
        "input_resolution": f"{RESOLUTION_RANGE[0]}..{RESOLUTION_RANGE[1]}, a multiple of "
                            f"patch_size, at most {MAX_GRID} patches a side; 0 = 224",
    }
    def parse_payload(self, spec: Any) -> VitArch:
        return parse_spec(spec)

    def resolution_of(self, value: Any, payload: VitArch) -> int:
        return check_resolution(value, self.default_input_resolution, payload.patch_size)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        depth = rng.choice(SAMPLE_DEPTHS)
        spec = {
            "embed_dim": rng.choice(SAMPLE_EMBED_DIMS),
            "depth": depth,
            "num_heads": [rng.choice(SAMPLE_NUM_HEADS) for _ in range(depth)],
            "mlp_ratio": [rng.choice(SAMPLE_MLP_RATIOS) for _ in range(depth)],
            "patch_size": DEFAULT_PATCH_SIZE,
        }
        return parse_spec(spec).to_spec()

    def mutate(self, spec: Any, rng: random.Random) -> dict[str, Any]:
        """One random local change: embed_dim or one layer's heads or MLP ratio redrawn from the
        sampling choices (a different value), or depth +-1 (adding a layer drawn likewise)."""
        arch = parse_spec(spec)
        # Parsed again: a change may break a cap (depth, width).
        mutated = pick_change(rng, arch, _mutations(arch, rng), lambda c: parse_spec(c.to_spec()))
        if mutated is None:
            raise AssertionError("unreachable: another head count is always a valid change")
        return mutated.to_spec()


GRAMMAR = VitGrammar()
