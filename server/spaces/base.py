"""The one small interface every search space implements."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn


@dataclass(frozen=True)
class ParsedArch:
    """A validated architecture in canonical form; `payload` is the space's own parsed value."""

    space: str
    canonical: str
    num_classes: int
    input_resolution: int
    payload: Any = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    # The spec as the request spelled it (normalised), when canonicalisation changed it: a
    # latency job carries it, since a replay agent looks a benchmark's own spelling up.
    spelled: str = ""
    # The canonical form of the network the export builds, when it is a smaller one (NB201: the
    # live cell, dead edges dropped): spellings that export alike share one export.
    exports_as: str = ""

    @property
    def as_spelled(self) -> str:
        return self.spelled or self.canonical

    @property
    def export_hash(self) -> str:
        return arch_hash(self.space, self.exports_as or self.canonical)

    @property
    def arch_hash(self) -> str:
        return arch_hash(self.space, self.canonical)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        return (3, self.input_resolution, self.input_resolution)


def arch_hash(space: str, canonical: str) -> str:
    return hashlib.sha256(f"{space}:{canonical}".encode()).hexdigest()


class SearchSpace(Protocol):
    name: str
    description: str
    example: str
    fields: dict[str, str]
    default_num_classes: int
    default_input_resolution: int
    # Names of the networks `build` can make for one arch (first: the space's own). A proxy whose
    # reference used another model of the space asks for it by name (engine: extra "network").
    network_variants: tuple[str, ...]

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        """Validate `spec`; raise errors.InvalidArgument naming the field and the bad token."""

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        """The full network, as the space's reference code builds it (proxies run on this);
        `variant` one of `network_variants` ("" or the first: the space's own)."""

    def build_exportable(self, arch: ParsedArch) -> nn.Module:
        """A network with the same outputs and dead parts removed (latency is measured on this)."""
