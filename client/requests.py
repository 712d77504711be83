"""v1 request messages from plain Python values (shared by `Client` and `AsyncClient`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Union

import grpc
from google.protobuf import json_format

from edgescore.client.errors import EdgescoreError
from edgescore.v1 import common_pb2, scoring_pb2

_FORMATS = {"onnx": common_pb2.ONNX, "tflite": common_pb2.TFLITE}
_PRECISIONS = {"fp32": common_pb2.FP32, "int8": common_pb2.INT8}
# Spaces whose spec is a plain string; the others take a dict (or its JSON text).
STRING_SPACES = ("nb201", "nats_sss", "fbnet")

Arch = Union[str, Mapping[str, Any], bytes, common_pb2.ArchSpec]
ProxyArg = Union[str, common_pb2.ProxyRequest]


def _bad(field: str, message: str) -> EdgescoreError:
    # Caught before sending: the same code and field naming the server would answer with.
    return EdgescoreError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


def arch_spec(arch: Arch, num_classes: int = 0, input_resolution: int = 0,
              space: str = "") -> common_pb2.ArchSpec:
    """An ArchSpec from a spec of `space` (default nb201): a string for nb201 / nats_sss /
    fbnet (fbnet also takes a list of its 22 op names or ids, sent joined by spaces), a dict
    (or its JSON text) with the v1 message's field names for nb101 / macro / vit, ONNX bytes
    for an uploaded model. An ArchSpec passes through unchanged."""
    if isinstance(arch, common_pb2.ArchSpec):
        return arch
    spec = common_pb2.ArchSpec()
    _set(spec, "num_classes", num_classes, "arch.num_classes")
    _set(spec, "input_resolution", input_resolution, "arch.input_resolution")
    if isinstance(arch, (bytes, bytearray)):
        spec.onnx.model = bytes(arch)
        return spec
    space = space or "nb201"
    if space not in common_pb2.ArchSpec.DESCRIPTOR.fields_by_name or space in (
            "num_classes", "input_resolution", "onnx"):
        raise _bad("arch", f"unknown search space '{space}'")
    if space == "fbnet" and isinstance(arch, (list, tuple)) and all(
            isinstance(op, str) or (isinstance(op, int) and not isinstance(op, bool))
            for op in arch):
        arch = " ".join(map(str, arch))  # the server names a bad op or a wrong count
    if space in STRING_SPACES:
        if not isinstance(arch, str):
            raise _bad(f"arch.{space}", "expects a string")
        _set(spec, space, arch, f"arch.{space}")
        return spec
    if isinstance(arch, str):
        try:
            arch = json.loads(arch)
        except ValueError as exc:
            raise _bad(f"arch.{space}", f"not JSON: {exc}") from None
    if not isinstance(arch, Mapping):
        raise _bad(f"arch.{space}", "expects a dict of the spec's fields")
    fields = dict(arch)
    if space == "nb101":
        fields["adjacency"] = _row_major(fields.get("adjacency"))
        if fields["adjacency"] is None:
            del fields["adjacency"]
    target = getattr(spec, space)
    try:
        json_format.ParseDict(fields, target)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise _bad(f"arch.{space}", str(exc)) from None
    target.SetInParent()
    return spec


def _row_major(adjacency: Any) -> Any:
    """A 7x7 matrix given as rows, flattened to the v1 field's row-major list; anything else is
    left for the message parser to accept or refuse."""
    if isinstance(adjacency, (list, tuple)) and adjacency and all(
            isinstance(row, (list, tuple)) for row in adjacency):
        return [v for row in adjacency for v in row]
    return adjacency


def measurement_settings(settings: Mapping[str, Any] | None) -> common_pb2.MeasurementSettings:
    s = dict(settings or {})
    for key, names in (("format", _FORMATS), ("precision", _PRECISIONS)):
        if key in s:
            try:
                s[key] = names[str(s[key]).lower()]
            except KeyError:
                raise _bad(f"measurement.{key}", f"'{s[key]}' is not one of "
                           f"{', '.join(names)}") from None
    return _message(common_pb2.MeasurementSettings, "measurement", s)


def _message(cls: Any, field: str, values: Mapping[str, Any]) -> Any:
    try:
        return cls(**values)
    # An unknown field, a value of the wrong type or out of range, or text protobuf cannot
    # encode (a lone surrogate: UnicodeEncodeError, a ValueError): the caller's input, so the
    # caller gets INVALID_ARGUMENT like any other bad argument, not a crash of score_many.
    except (TypeError, ValueError) as exc:
        raise _bad(field, str(exc)) from None


def _set(message: Any, attr: str, value: Any, field: str) -> None:
    """`setattr` on a message; protobuf checks the value here (see `_message`)."""
    try:
        setattr(message, attr, value)
    except (TypeError, ValueError) as exc:
        raise _bad(field, str(exc)) from None


def score_request(
    arch: Arch,
    proxies: Sequence[ProxyArg] = (),
    devices: Sequence[str] = (),
    *,
    space: str = "",
    seed: int | None = None,
    proxy_settings: Mapping[str, Any] | None = None,
    measurement: Mapping[str, Any] | None = None,
    num_classes: int = 0,
    input_resolution: int = 0,
    dataset_id: str = "",
    latency_timeout: float = 0.0,
    request_id: str = "",
    objective: common_pb2.Objective | None = None,
    allow_predicted: bool = False,
    no_cache: bool = False,
    priority: int = 0,
) -> scoring_pb2.ScoreRequest:
    """The ScoreRequest `Client.score` sends; see there for the arguments."""
    defaults = _message(common_pb2.ProxySettings, "proxy_settings", dict(proxy_settings or {}))
    if seed is not None:
        _set(defaults, "seed", seed, "proxy_settings.seed")
    if dataset_id:
        defaults.data.CopyFrom(_message(common_pb2.DataSource, "dataset_id", {
            "kind": common_pb2.DataSource.REGISTERED, "dataset_id": dataset_id}))
    settings = measurement_settings(measurement)
    request = _message(scoring_pb2.ScoreRequest, "request", {
        "arch": arch_spec(arch, num_classes, input_resolution, space),
        "proxies": [p if isinstance(p, common_pb2.ProxyRequest)
                    else _message(common_pb2.ProxyRequest, "proxies", {"name": p})
                    for p in proxies],
        "proxy_defaults": defaults,
        "devices": [_message(common_pb2.DeviceTarget, "devices",
                             {"device_class": d, "settings": settings}) for d in devices],
        "objective": objective,
    })
    for attr, value, field in (("request_id", request_id, "request_id"),
                               ("latency_timeout_seconds", latency_timeout, "latency_timeout"),
                               ("allow_predicted", allow_predicted, "allow_predicted"),
                               ("no_cache", no_cache, "no_cache"),
                               ("priority", priority, "priority")):
        _set(request, attr, value, field)
    return request
