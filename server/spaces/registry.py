"""The search spaces this server serves, keyed by their ArchSpec oneof field name."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from edgescore.server.errors import InvalidArgument, Unimplemented, shown
from edgescore.server.spaces import fbnet, macro, nats_sss, nb101, nb201, onnx_model, vit
from edgescore.server.spaces.base import ParsedArch, SearchSpace
from edgescore.v1 import common_pb2

SPACES: dict[str, SearchSpace] = {
    s.name: s for s in (nb201.SPACE, nats_sss.SPACE, nb101.SPACE, macro.SPACE, vit.SPACE,
                        fbnet.SPACE, onnx_model.SPACE)}

# In the v1 contract, served by later releases.
RESERVED: dict[str, str] = {}


def register(space: SearchSpace) -> None:
    SPACES[space.name] = space
    RESERVED.pop(space.name, None)


def get_space(name: str) -> SearchSpace:
    if name in SPACES:
        return SPACES[name]
    if name in RESERVED:
        raise Unimplemented(f"arch.{name}: the {name} space is not served by this build yet")
    raise InvalidArgument("arch", f"unknown search space {shown(name)}")


def default_shape(name: str) -> tuple[int, int]:
    """(class count, input resolution) a spec of the space gets when it sets neither."""
    space = get_space(name)
    return (space.default_num_classes, space.default_input_resolution)


def spec_value(spec: Any) -> Any:
    """A v1 spec message as the plain dict the spaces parse (proto field names; fields left at
    their zero value are absent, which the spaces read as "default"); strings pass through."""
    if isinstance(spec, common_pb2.OnnxModel):  # bytes stay bytes (not base64 text)
        return {"model": spec.model, "input_name": spec.input_name}
    if isinstance(spec, Message):
        return json_format.MessageToDict(spec, preserving_proto_field_name=True)
    return spec


def parse_arch(space_name: str | None, spec: object, num_classes: int,
               input_resolution: int) -> tuple[SearchSpace, ParsedArch]:
    if not space_name:
        raise InvalidArgument("arch", "no architecture spec is set (e.g. arch.nb201)")
    space = get_space(space_name)
    return space, space.parse(spec_value(spec), num_classes, input_resolution)
