"""MobileNet-style macro space: the spec (stem width, stages of inverted-residual blocks, head
width), its canonical JSON, sampling and mutation.

This is the space ProxylessNAS, OFA, Zen-NAS and ZiCo search over (MobileNetV2's skeleton with a
kernel size, expansion ratio, width, depth and squeeze-excitation choice per stage); the network
is edgescore.server.spaces.macro's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from edgescore.grammar.base import JsonGrammar, other_choice, pick_change
from edgescore.grammar.checks import (
    FLOAT_DIGITS,
    NUM_CLASSES_RANGE,
    canonical_json,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_keys,
    check_list,
)
from edgescore.grammar.errors import SpecError

FIELD = "arch.macro"
RESOLUTION_RANGE = (32, 1024)

# Caps bound the work parse and build may do; they sit far above every published space
# (MobileNetV2: 7 stages, 17 blocks, widths <= 320, head 1280). Parameter/MAC caps come later.
KERNELS = (3, 5, 7)
STRIDES = (1, 2)
STEM_WIDTH_RANGE = (1, 1024)
WIDTH_RANGE = (1, 4096)
HEAD_WIDTH_RANGE = (1, 8192)
EXPANSION_RANGE = (1.0, 16.0)
DEPTH_RANGE = (1, 16)  # blocks in one stage
MAX_STAGES = 16
MAX_BLOCKS = 64  # blocks over all stages

# proto3 cannot tell zero from unset, so zero (or a missing key) means these defaults.
DEFAULT_STEM_WIDTH = 32
DEFAULT_HEAD_WIDTH = 1280  # MobileNetV2 / ProxylessNAS / OFA's last channel count
DEFAULT_KERNEL = 3
DEFAULT_EXPANSION = 6.0  # MobileNetV2's t
DEFAULT_DEPTH = 1
DEFAULT_STRIDE = 1

# MobileNetV2-1.0 (Sandler et al. 2018, table 2): stages (t, c, n, s).
MOBILENET_V2: dict[str, Any] = {
    "stem_width": 32,
    "stages": [
        {"kernel": 3, "expansion": float(t), "width": c, "depth": n, "stride": s,
         "squeeze_excitation": False}
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    ],
    "head_width": 1280,
}

# The sampling distribution (ProxylessNAS / OFA-like, on MobileNetV2's skeleton): the first stage
# is MobileNetV2's fixed k3 t1 c16 block; stages 1-5 draw kernel, expansion, depth, width
# (base x 0.75 / 1 / 1.25, rounded to a multiple of 8) and SE (p = 0.5); the last stage likewise
# with depth 1. The stem draws from SAMPLE_STEMS; the head stays 1280.
SAMPLE_KERNELS = (3, 5, 7)
SAMPLE_EXPANSIONS = (3.0, 4.0, 6.0)
SAMPLE_DEPTHS = (2, 3, 4)
SAMPLE_WIDTH_MULTIPLIERS = (0.75, 1.0, 1.25)
SAMPLE_STEMS = (16, 24, 32)
SAMPLE_SKELETON = ((24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1))  # (base width, stride)
SAMPLE_FIRST_STAGE = {"kernel": 3, "expansion": 1.0, "width": 16, "depth": 1, "stride": 1,
                      "squeeze_excitation": False}
WIDTH_STEP = 8  # mutate moves a width by one group of 8 channels


# ---- the spec ----------------------------------------------------------------------------------

STAGE_FIELDS = ("kernel", "expansion", "width", "depth", "stride", "squeeze_excitation")
SPEC_FIELDS = ("stem_width", "stages", "head_width")


@dataclass(frozen=True)
class Stage:
    kernel: int
    expansion: float
    width: int
    depth: int
    stride: int
    squeeze_excitation: bool


@dataclass(frozen=True)
class MacroArch:
    """The payload of a parsed macro spec: every default filled in, floats rounded."""

    stem_width: int
    stages: tuple[Stage, ...]
    head_width: int

    def to_spec(self) -> dict[str, Any]:
        return {
            "stem_width": self.stem_width,
            "stages": [{name: getattr(stage, name) for name in STAGE_FIELDS}
                       for stage in self.stages],
            "head_width": self.head_width,
        }


def _parse_stage(field: str, spec: Any) -> Stage:
    spec = check_keys(field, spec, STAGE_FIELDS)
    kernel = check_choice(f"{field}.kernel", spec.get("kernel", 0), DEFAULT_KERNEL, KERNELS)
    stride = check_choice(f"{field}.stride", spec.get("stride", 0), DEFAULT_STRIDE, STRIDES)
    return Stage(
        kernel=kernel,
        expansion=check_float(f"{field}.expansion", spec.get("expansion", 0), DEFAULT_EXPANSION,
                              EXPANSION_RANGE),
        width=check_int(f"{field}.width", spec.get("width", 0), None, WIDTH_RANGE),
        depth=check_int(f"{field}.depth", spec.get("depth", 0), DEFAULT_DEPTH, DEPTH_RANGE),
        stride=stride,
        squeeze_excitation=check_bool(f"{field}.squeeze_excitation",
                                      spec.get("squeeze_excitation", False)),
    )


def parse_spec(spec: Any) -> MacroArch:
    """Validate a macro spec dict (MacroSpec's field names); raise SpecError on any flaw."""
    spec = check_keys(FIELD, spec, SPEC_FIELDS)
    stem = check_int(f"{FIELD}.stem_width", spec.get("stem_width", 0), DEFAULT_STEM_WIDTH,
                     STEM_WIDTH_RANGE)
    raw_stages = check_list(f"{FIELD}.stages", spec.get("stages", []), MAX_STAGES)
    if not raw_stages:
        raise SpecError(f"{FIELD}.stages", "at least one stage is required")
    stages = tuple(_parse_stage(f"{FIELD}.stages[{i}]", s) for i, s in enumerate(raw_stages))
    blocks = sum(stage.depth for stage in stages)
    if blocks > MAX_BLOCKS:
        raise SpecError(f"{FIELD}.stages", f"{blocks} blocks in all, at most {MAX_BLOCKS}")
    head = check_int(f"{FIELD}.head_width", spec.get("head_width", 0), DEFAULT_HEAD_WIDTH,
                     HEAD_WIDTH_RANGE)
    return MacroArch(stem_width=stem, stages=stages, head_width=head)


# ---- sampling ----------------------------------------------------------------------------------


def round_width(value: float) -> int:
    """A sampled width: base x multiplier rounded to a multiple of WIDTH_STEP, at least one."""
    return max(WIDTH_STEP, int(value / WIDTH_STEP + 0.5) * WIDTH_STEP)


def _sample_stage(rng: random.Random, base: int, stride: int, depth: int) -> dict[str, Any]:
    return {
        "kernel": rng.choice(SAMPLE_KERNELS),
        "expansion": rng.choice(SAMPLE_EXPANSIONS),
        "width": round_width(base * rng.choice(SAMPLE_WIDTH_MULTIPLIERS)),
        "depth": depth,
        "stride": stride,
        "squeeze_excitation": rng.random() < 0.5,
    }


def _mutations(arch: MacroArch, rng: random.Random) -> list[MacroArch]:
    """One candidate per mutable dimension, each a single local change."""
    stem = other_choice(rng, SAMPLE_STEMS, arch.stem_width)
    candidates = [replace(arch, stem_width=stem)]
    for i, stage in enumerate(arch.stages):
        changes = [
            {"kernel": other_choice(rng, SAMPLE_KERNELS, stage.kernel)},
            {"expansion": other_choice(rng, SAMPLE_EXPANSIONS, stage.expansion)},
            {"depth": stage.depth + rng.choice((-1, 1))},
            {"width": stage.width + rng.choice((-WIDTH_STEP, WIDTH_STEP))},
            {"squeeze_excitation": not stage.squeeze_excitation},
        ]
        for change in changes:
            stages = list(arch.stages)
            stages[i] = replace(stage, **change)
            candidates.append(replace(arch, stages=tuple(stages)))
    return candidates


class MacroGrammar(JsonGrammar):
    """MobileNet-style inverted-residual networks (ImageNet defaults)."""

    name = "macro"
    description = (
        "MobileNet-style macro network (ProxylessNAS / OFA / Zen-NAS): stem conv, stages of "
        "inverted-residual blocks with per-stage kernel, expansion, width, depth, stride and SE, "
        "1x1 head conv, pooled linear classifier; ReLU6"
    )
    example = canonical_json(MOBILENET_V2)
    fields = {
        "stem_width": f"stem conv channels, {STEM_WIDTH_RANGE[0]}..{STEM_WIDTH_RANGE[1]}, "
                      f"0 = {DEFAULT_STEM_WIDTH}",
        "stages": f"1..{MAX_STAGES} stages, at most {MAX_BLOCKS} blocks in all",
        "stages[].kernel": f"depthwise kernel, one of {KERNELS}, 0 = {DEFAULT_KERNEL}",
        "stages[].expansion": f"expansion ratio, {EXPANSION_RANGE[0]:g}..{EXPANSION_RANGE[1]:g} "
                              f"(rounded to {FLOAT_DIGITS} decimals; 1 = no expand conv), "
                              f"0 = {DEFAULT_EXPANSION:g}",
        "stages[].width": f"output channels, {WIDTH_RANGE[0]}..{WIDTH_RANGE[1]} (required)",
        "stages[].depth": f"blocks, {DEPTH_RANGE[0]}..{DEPTH_RANGE[1]}, 0 = {DEFAULT_DEPTH}",
        "stages[].stride": f"stride of the first block, one of {STRIDES}, 0 = {DEFAULT_STRIDE}",
        "stages[].squeeze_excitation": "MobileNetV3 squeeze-excitation after the depthwise conv",
        "head_width": f"head conv channels, {HEAD_WIDTH_RANGE[0]}..{HEAD_WIDTH_RANGE[1]}, "
                      f"0 = {DEFAULT_HEAD_WIDTH}",
        "num_classes": f"{NUM_CLASSES_RANGE[0]}..{NUM_CLASSES_RANGE[1]}, 0 = 1000",
        "input_resolution": f"{RESOLUTION_RANGE[0]}..{RESOLUTION_RANGE[1]}, 0 = 224",
    }
    def parse_payload(self, spec: Any) -> MacroArch:
        return parse_spec(spec)

    def resolution_of(self, value: Any, payload: MacroArch) -> int:
        return check_int("arch.input_resolution", value, self.default_input_resolution,
                         RESOLUTION_RANGE)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        stages = [dict(SAMPLE_FIRST_STAGE)]
        for index, (base, stride) in enumerate(SAMPLE_SKELETON):
            last = index == len(SAMPLE_SKELETON) - 1
            depth = 1 if last else rng.choice(SAMPLE_DEPTHS)
            stages.append(_sample_stage(rng, base, stride, depth))
        spec = {"stem_width": rng.choice(SAMPLE_STEMS), "stages": stages,
                "head_width": DEFAULT_HEAD_WIDTH}
        return parse_spec(spec).to_spec()

    def mutate(self, spec: Any, rng: random.Random) -> dict[str, Any]:
        """One random local change: another stem width, or in one stage another kernel or
        expansion (from the sampling choices), depth +-1, width +-8, or SE toggled."""
        arch = parse_spec(spec)
        # Parsed again: a change may break a cap (depth, width).
        mutated = pick_change(rng, arch, _mutations(arch, rng), lambda c: parse_spec(c.to_spec()))
        if mutated is None:
            raise AssertionError("unreachable: toggling SE always gives another valid spec")
        return mutated.to_spec()


GRAMMAR = MacroGrammar()
