"""The search spaces this server serves, keyed by their ArchSpec oneof field name."""

from __future__ import annotations

from edgescore.server.errors import InvalidArgument, Unimplemented
from edgescore.server.spaces.base import ParsedArch, SearchSpace
from edgescore.server.spaces.nb201 import SPACE as NB201

SPACES: dict[str, SearchSpace] = {NB201.name: NB201}

# In the v1 contract, served by later releases.
RESERVED = {
    "nb101": "NAS-Bench-101 cell (adjacency + ops)",
    "nats_sss": "NATS-Bench size space channel string c0:c1:c2:c3:c4",
    "macro": "MobileNet-style inverted-residual macro network",
    "vit": "small vision transformer (AutoFormer-style)",
    "onnx": "any network uploaded as ONNX bytes",
}


def get_space(name: str) -> SearchSpace:
    if name in SPACES:
        return SPACES[name]
    if name in RESERVED:
        raise Unimplemented(f"arch.{name}: the {name} space is not served by this build yet")
    raise InvalidArgument("arch", f"unknown search space '{name}'")


def parse_arch(space_name: str | None, spec: object, num_classes: int,
               input_resolution: int) -> tuple[SearchSpace, ParsedArch]:
    if not space_name:
        raise InvalidArgument("arch", "no architecture spec is set (e.g. arch.nb201)")
    space = get_space(space_name)
    return space, space.parse(spec, num_classes, input_resolution)
