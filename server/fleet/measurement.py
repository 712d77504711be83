"""The measurement protocol's settings: the server's defaults and caps, resolved once per target.

Every knob is resolved here, sent in the job, and echoed in the result, so a latency is never
detached from how it was measured (docs/measurement.md explains each one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf import json_format

from edgescore.accelerators import canonical_delegate, canonical_provider
from edgescore.server.errors import InvalidArgument
from edgescore.server.export.result import FORMAT_NAMES, PRECISION_NAMES
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import canonical_json
from edgescore.v1 import common_pb2

# Server-side defaults of the measurement protocol (docs/measurement.md explains them).
DEFAULT_WARMUP_RUNS = 10
DEFAULT_MIN_RUNS = 50
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 30.0
MAX_BATCH = 1024
MAX_SECONDS_CAP = 600.0
# Run counts are capped too (docs/measurement.md): warm-up is counted in runs, not bounded by
# max_seconds, so 2**32 - 1 warm-up runs would hold a board for days. 1,000 warm-up runs is 100x
# the default and more than any benchmark tool uses (benchmark_model and onnxruntime_perf_test
# warm up with 1 run); 10,000 timed runs give 100 samples beyond the p99 and keep the result's
# samples_ms (and its stored copy) under 80 KB. max_seconds still ends the timed runs first.
MAX_WARMUP_RUNS = 1_000
MAX_MIN_RUNS = 10_000
# Intra-op threads: 256 is more cores than any edge board (or most servers) has; past a board's
# cores threads only oversubscribe it, and 10**6 of them made onnxruntime allocate ~3 GB and crash.
# The agent refuses more than its own cap (--max-threads, default 4 x its cores).
MAX_THREADS = 256
# Above any CPU's junction limit: a cooldown target higher than this is always met at once.
MAX_COOLDOWN_CELSIUS = 150.0
# Every numeric setting's upper bound; the error names the field and its cap.
CAPS = {
    "warmup_runs": MAX_WARMUP_RUNS,
    "min_runs": MAX_MIN_RUNS,
    "min_seconds": MAX_SECONDS_CAP,
    "max_seconds": MAX_SECONDS_CAP,
    "threads": MAX_THREADS,
    "batch_size": MAX_BATCH,
    "cooldown_below_celsius": MAX_COOLDOWN_CELSIUS,
}


@dataclass(frozen=True)
class Target:
    """One device class a request wants a latency on, with its resolved measurement settings."""

    device_class: str
    settings: common_pb2.MeasurementSettings


def settings_json(settings: common_pb2.MeasurementSettings) -> str:
    """The settings as stored measurements and shared jobs are keyed by."""
    return canonical_json(json_format.MessageToDict(settings, preserving_proto_field_name=True))


def _text(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def resolve_measurement(
    settings: common_pb2.MeasurementSettings, arch: ParsedArch, field: str
) -> common_pb2.MeasurementSettings:
    """Fill defaults and validate; `field` prefixes error messages (e.g. "devices[0].settings")."""
    s = common_pb2.MeasurementSettings()
    s.CopyFrom(settings)
    s.warmup_runs = s.warmup_runs or DEFAULT_WARMUP_RUNS
    s.min_runs = s.min_runs or DEFAULT_MIN_RUNS
    s.min_seconds = s.min_seconds or DEFAULT_MIN_SECONDS
    s.max_seconds = s.max_seconds or DEFAULT_MAX_SECONDS
    s.batch_size = s.batch_size or 1
    for name in ("min_seconds", "max_seconds", "cooldown_below_celsius"):
        if not 0 <= getattr(s, name) < math.inf:  # NaN fails this too
            raise InvalidArgument(f"{field}.{name}", "must be a finite number >= 0")
    for name, cap in CAPS.items():
        value = getattr(s, name)
        if value > cap:
            raise InvalidArgument(f"{field}.{name}", f"{_text(value)} exceeds the cap {_text(cap)}")
    if s.min_seconds > s.max_seconds:
        raise InvalidArgument(f"{field}.min_seconds", "must not exceed max_seconds")
    if s.format == common_pb2.ARTIFACT_FORMAT_UNSPECIFIED:
        s.format = common_pb2.ONNX
    if s.precision == common_pb2.PRECISION_UNSPECIFIED:
        s.precision = common_pb2.FP32
    if s.format not in FORMAT_NAMES:
        raise InvalidArgument(f"{field}.format", f"unknown artifact format {s.format}")
    if s.precision not in PRECISION_NAMES:
        raise InvalidArgument(f"{field}.precision", f"unknown precision {s.precision}")
    try:
        s.execution_provider = canonical_provider(s.execution_provider)
    except ValueError as exc:
        raise InvalidArgument(f"{field}.execution_provider", str(exc)) from None
    try:
        s.delegate = canonical_delegate(s.delegate)
    except ValueError as exc:
        raise InvalidArgument(f"{field}.delegate", str(exc)) from None
    if s.execution_provider and s.format != common_pb2.ONNX:
        raise InvalidArgument(f"{field}.execution_provider",
                              "applies to ONNX artifacts only (TFLITE: use delegate)")
    if s.delegate and s.format != common_pb2.TFLITE:
        raise InvalidArgument(f"{field}.delegate",
                              "applies to TFLITE artifacts only (ONNX: use execution_provider)")
    if s.input_shape and list(s.input_shape) != [s.batch_size, *arch.input_shape]:
        raise InvalidArgument(f"{field}.input_shape", "is set by the server from the architecture")
    del s.input_shape[:]
    s.input_shape.extend([s.batch_size, *arch.input_shape])
    return s
