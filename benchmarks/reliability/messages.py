"""Hypothesis strategies for any protobuf message, drawn from its descriptor: every field unset or
set to an edge value of its type (huge and negative numbers, NaN, long and odd strings, unknown
enum numbers, long repeated fields), nested messages to a bounded depth."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

_INT_BITS = {FieldDescriptor.TYPE_INT32: (32, True), FieldDescriptor.TYPE_SINT32: (32, True),
             FieldDescriptor.TYPE_SFIXED32: (32, True), FieldDescriptor.TYPE_INT64: (64, True),
             FieldDescriptor.TYPE_SINT64: (64, True), FieldDescriptor.TYPE_SFIXED64: (64, True),
             FieldDescriptor.TYPE_UINT32: (32, False), FieldDescriptor.TYPE_FIXED32: (32, False),
             FieldDescriptor.TYPE_UINT64: (64, False), FieldDescriptor.TYPE_FIXED64: (64, False)}
_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
# A few characters past any echoed-value bound (issue #14 point 4) and the odd ones parsers meet.
_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "\x00", "é" * 3, "../../etc",
                                                          "x" * 100_000, "|none~0|+"]))


def _integers(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1]))


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type in _INT_BITS:
        return _integers(*_INT_BITS[field.type])
    if field.type in _FLOATS:
        return st.floats(allow_nan=True, allow_infinity=True,
                         width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\x08\x01" * 5000))
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 12)  # unknown numbers included: proto3 enums are open
    return message_strategy(field.message_type, depth + 1)


def _repeated(field: FieldDescriptor) -> bool:
    # protobuf 6 replaced `label` with `is_repeated`.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def message_strategy(descriptor: Descriptor, depth: int = 0, max_depth: int = 3,
                     ) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type; past `max_depth` nested messages stay empty."""
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(descriptor)
    if depth >= max_depth:
        return st.just(cls())
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if _is_map(field):
            key, value = field.message_type.fields_by_name["key"], \
                field.message_type.fields_by_name["value"]
            value_strategy = _scalar(value, depth)
            parts[field.name] = st.dictionaries(_scalar(key, depth), value_strategy, max_size=3)
        elif _repeated(field):
            parts[field.name] = st.lists(_scalar(field, depth), max_size=4)
        else:
            parts[field.name] = _scalar(field, depth)
    chosen = st.fixed_dictionaries({}, optional=parts)
    return chosen.map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if _is_map(field):
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif _repeated(field):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for v in value:
                    target.add().CopyFrom(v)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
