"""FBNet search space as HW-NAS-Bench and HELP define it: 22 searchable layers, each one of 9 ops;
the spec string, its canonical form, the fixed channel plan, sampling and mutation.

The spec is the 22 op names separated by spaces, first layer first, exactly HW-NAS-Bench's
`get_net_config(...)["arch_str"]` joined by spaces (HELP's FBNet tables store it that way). The op
ids (HW-NAS-Bench's `op_idx_list`, 0..8 in the order of OPS) are accepted in place of names,
per token, and so is a list of 22 names or ids; the canonical form is always the names joined by
single spaces. Every spec is a distinct network (9^22, about 9.8e20 archs): the channel plan is
fixed, so no two op sequences build the same layers.

The channel plan (HW-NAS-Bench `hw_nas_bench_api/fbnet_models/model_infer.py`, `FBNet_Infer`,
its CIFAR-100 setting, which HELP's FBNet latencies were measured on): stem 3x3 conv to 16
channels, stride 1; seven stages of 1, 4, 4, 4, 4, 4, 1 layers with 16, 24, 32, 64, 112, 184, 352
output channels and first-layer strides 1, 1, 2, 2, 1, 2, 1; a 1x1 head conv to 1504 channels;
global average pooling and a linear classifier. The network is edgescore.server.spaces.fbnet's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgescore.grammar.base import Grammar, ParsedArch, other_choice
from edgescore.grammar.errors import SpecError, quote
from edgescore.grammar.shapes import check_shape, shape_fields

FIELD = "arch.fbnet"
# In HW-NAS-Bench's PRIMITIVES order: an op's id is its index here.
OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP = "skip"
NUM_LAYERS = 22
SIZE = len(OPS) ** NUM_LAYERS


@dataclass(frozen=True)
class BlockOp:
    """An MBConv op: depthwise kernel, expansion ratio, groups of the two 1x1 convs."""

    kernel: int
    expansion: int
    groups: int


# Every op but `skip` (HW-NAS-Bench's ConvBlock_list / OPS table).
BLOCK_OPS = {
    "k3_e1": BlockOp(3, 1, 1), "k3_e1_g2": BlockOp(3, 1, 2), "k3_e3": BlockOp(3, 3, 1),
    "k3_e6": BlockOp(3, 6, 1), "k5_e1": BlockOp(5, 1, 1), "k5_e1_g2": BlockOp(5, 1, 2),
    "k5_e3": BlockOp(5, 3, 1), "k5_e6": BlockOp(5, 6, 1),
}

# The CIFAR-100 network of FBNet_Infer ("FBNetv1 setting, unofficial CIFAR-10/100 setting").
STEM_CHANNELS = 16
STEM_STRIDE = 1
# (layers, output channels, stride of the stage's first layer) per stage.
STAGES = ((1, 16, 1), (4, 24, 1), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1))
HEAD_CHANNELS = 1504
DEFAULT_NUM_CLASSES = 100  # CIFAR-100
RESOLUTION_RANGE = (8, 1024)  # three stride-2 stages; any size works (convs round up alike)
MAX_SPEC_CHARS = 1_000  # far above any valid spec (the longest, all k5_e1_g2, is 197)

_ID_RE = re.compile(r"[0-9]")


@dataclass(frozen=True)
class Layer:
    """One searchable layer's place in the fixed plan."""

    index: int  # 0..21
    stage: int  # 0..6
    c_in: int
    c_out: int
    stride: int

    @property
    def identity_skip(self) -> bool:
        """Whether `skip` here is the identity (else a 1x1 conv-BN-ReLU, as the reference)."""
        return self.stride == 1 and self.c_in == self.c_out


def layer_plan() -> tuple[Layer, ...]:
    """The 22 layers: a stage's first layer takes the previous stage's width (the stem's for the
    first) and the stage's stride; the others keep the width at stride 1."""
    layers, c_in = [], STEM_CHANNELS
    for stage, (count, c_out, stride) in enumerate(STAGES):
        for i in range(count):
            layers.append(Layer(len(layers), stage, c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    return tuple(layers)


LAYERS = layer_plan()
assert len(LAYERS) == NUM_LAYERS

Payload = tuple[str, ...]  # NUM_LAYERS op names


def _bad(message: str) -> SpecError:
    return SpecError(FIELD, message)


def _op_of(index: int, token: Any) -> str:
    """Layer `index`'s op from a name or an id (an int, or a one-digit string)."""
    if isinstance(token, str):
        if token in OPS:
            return token
        if _ID_RE.fullmatch(token) and int(token) < len(OPS):
            return OPS[int(token)]
        raise _bad(f"layer {index}: unknown op {quote(token)}; valid ops: "
                   f"{', '.join(f'{i} {op}' for i, op in enumerate(OPS))} (name or id)")
    if isinstance(token, int) and not isinstance(token, bool):
        if 0 <= token < len(OPS):
            return OPS[token]
        shown = token if abs(token) < 10**6 else "a huge number"  # str() of a huge int raises
        raise _bad(f"layer {index}: op id {shown} is outside 0..{len(OPS) - 1}")
    raise _bad(f"layer {index}: expected an op name or id, got a {type(token).__name__}")


def parse_ops(spec: Any) -> Payload:
    """Validate a spec: 22 op names or ids separated by whitespace, or a list of 22 of them."""
    if isinstance(spec, str):
        if len(spec) > MAX_SPEC_CHARS:
            raise _bad(f"spec is {len(spec)} characters, at most {MAX_SPEC_CHARS}")
        tokens: Sequence[Any] = spec.split()
        if len(tokens) != NUM_LAYERS:
            raise _bad(f"expected {NUM_LAYERS} ops separated by spaces (one per layer, e.g. "
                       f"'{' '.join(['k3_e6'] * 2)} ...'), got {len(tokens)} in {quote(spec)}")
    elif isinstance(spec, (list, tuple)):
        if len(spec) != NUM_LAYERS:  # before looking inside: bounds the work on huge lists
            raise _bad(f"expected {NUM_LAYERS} ops (one per layer), got a list of {len(spec)}")
        tokens = spec
    else:
        raise _bad(f"expected a string of {NUM_LAYERS} op names separated by spaces (or a list "
                   f"of {NUM_LAYERS} op names or ids), got {type(spec).__name__}")
    return tuple(_op_of(index, token) for index, token in enumerate(tokens))


def canonical_string(ops: Sequence[str]) -> str:
    """The op names joined by single spaces (HELP's `arch_str`)."""
    return " ".join(ops)


def op_ids(ops: Sequence[str]) -> tuple[int, ...]:
    """HW-NAS-Bench's `op_idx_list` of a payload."""
    return tuple(OPS.index(op) for op in ops)


class FbnetGrammar(Grammar):
    """HW-NAS-Bench's FBNet space (CIFAR-100 network)."""

    name = "fbnet"
    description = (
        "FBNet space of HW-NAS-Bench / HELP: 22 searchable layers, each one of 9 ops (MBConv "
        "kernel 3/5, expansion 1/3/6, 1x1 convs in 2 groups for _g2, or skip); HW-NAS-Bench's "
        "CIFAR-100 network (stem 16, stages 16-24-32-64-112-184-352, head 1504)"
    )
    # HELP's first FBNet arch in its sample order (`row` 1 of the shared table).
    example = ("k5_e1_g2 k3_e6 k5_e1_g2 k5_e1_g2 k3_e1 k5_e1 k5_e6 k5_e1_g2 k5_e1_g2 k3_e3 k3_e1 "
               "k3_e3 k5_e1 k5_e1_g2 k3_e1_g2 k3_e6 k5_e6 k3_e3 k5_e3 k3_e1 k5_e1 k3_e1")
    fields = {
        "format": f"{NUM_LAYERS} op names separated by spaces, first layer first (HW-NAS-Bench "
                  f"arch_str); op ids 0..{len(OPS) - 1} (op_idx_list) are accepted in place of "
                  "names; canonical: the names joined by single spaces",
        "ops": ", ".join(f"{i} {op}" for i, op in enumerate(OPS)),
        "layers": "stages of " + ", ".join(f"{n}x{c}" for n, c, _ in STAGES)
                  + " (layers x channels), first-layer strides "
                  + "/".join(str(s) for _, _, s in STAGES)
                  + f"; stem {STEM_CHANNELS}, head {HEAD_CHANNELS}",
        **shape_fields(1, RESOLUTION_RANGE, DEFAULT_NUM_CLASSES),
    }
    default_num_classes = DEFAULT_NUM_CLASSES
    default_input_resolution = 32

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        ops = parse_ops(spec)
        classes, resolution = check_shape(num_classes, input_resolution, 1, RESOLUTION_RANGE,
                                          DEFAULT_NUM_CLASSES)
        return ParsedArch(
            space=self.name,
            canonical=canonical_string(ops),
            num_classes=classes,
            input_resolution=resolution,
            payload=ops,
        )

    def largest(self, num_classes: int, input_resolution: int) -> ParsedArch:
        """Every layer k5_e6: in each layer it has the most parameters and MACs of the 9 ops, and
        the layers' shapes do not depend on the ops."""
        return self.parse(canonical_string(["k5_e6"] * NUM_LAYERS), num_classes, input_resolution)

    def sample(self, rng: random.Random) -> str:
        """Uniform: every layer's op uniform over the 9."""
        return canonical_string([rng.choice(OPS) for _ in range(NUM_LAYERS)])

    def mutate(self, spec: Any, rng: random.Random) -> str:
        """One layer's op changed to one of the other 8."""
        ops = list(parse_ops(spec))
        layer = rng.randrange(NUM_LAYERS)
        ops[layer] = other_choice(rng, OPS, ops[layer])
        return canonical_string(ops)


GRAMMAR = FbnetGrammar()
