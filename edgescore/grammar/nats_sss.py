"""NATS-Bench size search space (SSS): the channel string "c0:c1:c2:c3:c4", its sampling and
mutation.

Each of the five widths is one of 8, 16, ..., 64 (8^5 = 32,768 architectures); every architecture
uses the same cell, the best one of the topology space, and differs only in widths (the network:
edgescore.server.spaces.nats_sss).
"""

from __future__ import annotations

import random
import re
from typing import Any

from edgescore.grammar import nb201
from edgescore.grammar.base import Grammar, ParsedArch, other_choice
from edgescore.grammar.errors import SpecError, quote
from edgescore.grammar.shapes import check_shape, shape_fields

FIELD = "arch.nats_sss"
CANDIDATES = (8, 16, 24, 32, 40, 48, 56, 64)  # xautodl get_search_spaces("sss", "nats-bench")
NUM_LAYERS = 5
# The fixed cell (xautodl exps/NATS-Bench/main-sss.py: the TSS arch with the best CIFAR-100
# validation accuracy, index 9930).
GENOTYPE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
CELL = nb201.parse_arch_string(GENOTYPE)
# Each stride-2 block adds an avg-pooled shortcut (floor) to a strided conv (ceil): the two agree
# only on even sizes, so the input must be divisible by 4.
RESOLUTION_RANGE = (8, 1024)
RESOLUTION_MULTIPLE = 4
MAX_SPEC_CHARS = 1_000

Channels = tuple[int, ...]  # always NUM_LAYERS entries from CANDIDATES

_TOKEN_RE = re.compile(r"[0-9]{1,4}")


def _bad(message: str) -> SpecError:
    return SpecError(FIELD, message)


def _check_channel(index: int, value: int) -> int:
    if value not in CANDIDATES:
        shown = value if abs(value) < 10**6 else "a huge number"  # str() of a huge int raises
        raise _bad(f"channel {index} is {shown}; each must be one of "
                   f"{', '.join(map(str, CANDIDATES))}")
    return value


def parse_channels(spec: Any) -> Channels:
    """Validate "c0:c1:c2:c3:c4" or a list of five ints (JSON arrays arrive as lists)."""
    if isinstance(spec, str):
        if len(spec) > MAX_SPEC_CHARS:
            raise _bad(f"string is {len(spec)} characters, at most {MAX_SPEC_CHARS}")
        tokens = spec.split(":")
        if len(tokens) != NUM_LAYERS:
            raise _bad(f"expected {NUM_LAYERS} channel counts separated by ':' (e.g. "
                       f"{NatsSssGrammar.example}), got {len(tokens)} in {quote(spec)}")
        values = []
        for index, token in enumerate(tokens):
            if not _TOKEN_RE.fullmatch(token):
                raise _bad(f"channel {index} {quote(token)} is not a plain integer")
            values.append(_check_channel(index, int(token)))
        return tuple(values)
    if isinstance(spec, (list, tuple)):
        if len(spec) != NUM_LAYERS:  # before looking inside: bounds the work on huge lists
            raise _bad(f"expected {NUM_LAYERS} channel counts, got a list of {len(spec)}")
        for index, value in enumerate(spec):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(f"channel {index} is a {type(value).__name__}, expected an integer")
            _check_channel(index, value)
        return tuple(spec)
    raise _bad(f"expected a string 'c0:c1:c2:c3:c4' or a list of 5 integers, "
               f"got {type(spec).__name__}")


def canonical_string(channels: Channels) -> str:
    return ":".join(str(c) for c in channels)


class NatsSssGrammar(Grammar):
    """NATS-Bench's size search space (32,768 architectures)."""

    name = "nats_sss"
    description = (
        "NATS-Bench SSS: widths of the 5 layers (cell, residual block, cell, residual block, cell) "
        "of the CIFAR network with the fixed best TSS cell"
    )
    example = "64:64:64:64:64"
    fields = {
        "format": "c0:c1:c2:c3:c4 (or a list of 5 integers); c0 is the stem and first cell "
                  "width, c1/c3 the residual blocks, c2/c4 the second and third cell",
        "channels": ", ".join(map(str, CANDIDATES)),
        **shape_fields(RESOLUTION_MULTIPLE, RESOLUTION_RANGE),
    }
    default_num_classes = 10
    default_input_resolution = 32

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        channels = parse_channels(spec)
        classes, resolution = check_shape(num_classes, input_resolution,
                                          RESOLUTION_MULTIPLE, RESOLUTION_RANGE)
        return ParsedArch(
            space=self.name,
            canonical=canonical_string(channels),
            num_classes=classes,
            input_resolution=resolution,
            payload=channels,
        )

    def largest(self, num_classes: int, input_resolution: int) -> ParsedArch:
        """Every layer at the widest choice: the most parameters and MACs of the space."""
        widest = ":".join([str(CANDIDATES[-1])] * NUM_LAYERS)
        return self.parse(widest, num_classes, input_resolution)

    def sample(self, rng: random.Random) -> str:
        """Uniform over the 32,768 architectures (xautodl regularized_ea.py random_size_func)."""
        return canonical_string(tuple(rng.choice(CANDIDATES) for _ in range(NUM_LAYERS)))

    def mutate(self, spec: Any, rng: random.Random) -> str:
        """One layer's width resampled (xautodl regularized_ea.py mutate_size_func), from the
        other seven values so that the child always differs from its parent."""
        channels = list(parse_channels(spec))
        layer = rng.randrange(NUM_LAYERS)
        channels[layer] = other_choice(rng, CANDIDATES, channels[layer])
        return canonical_string(tuple(channels))


GRAMMAR = NatsSssGrammar()
