"""Latency of one architecture on one device class: export once, queue a job, wait for an agent.

Every knob of the measurement protocol is resolved here, sent in the job, and echoed in the
result, so a latency is never detached from how it was measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import grpc

from edgescore.server.errors import InvalidArgument, NotFound, ServerError, Unimplemented
from edgescore.server.export.artifacts import ArtifactStore
from edgescore.server.fleet.fleet import Fleet, JobOutcome, PendingJob
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import agent_pb2, common_pb2

# Server-side defaults of the measurement protocol (docs/measurement.md explains them).
DEFAULT_WARMUP_RUNS = 10
DEFAULT_MIN_RUNS = 50
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 30.0
MAX_BATCH = 1024
MAX_SECONDS_CAP = 600.0

# Exports are built from a fixed seed: latency does not depend on the weights, and a fixed seed
# makes the artifact bytes (hence its sha256) identical for the same architecture.
EXPORT_SEED = 0

# Failure kind → the per-item status code the client sees.
_FAILURE_CODES = {
    common_pb2.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    common_pb2.AGENT_LOST: grpc.StatusCode.UNAVAILABLE,
    common_pb2.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    common_pb2.UNSUPPORTED_FORMAT: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.UNSUPPORTED_OP: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.PARITY_FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.EXPORT_FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.ARTIFACT_CORRUPT: grpc.StatusCode.DATA_LOSS,
}


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
        if getattr(s, name) < 0:
            raise InvalidArgument(f"{field}.{name}", "must not be negative")
    if s.max_seconds > MAX_SECONDS_CAP:
        raise InvalidArgument(f"{field}.max_seconds", f"{s.max_seconds} exceeds {MAX_SECONDS_CAP}")
    if s.min_seconds > s.max_seconds:
        raise InvalidArgument(f"{field}.min_seconds", "must not exceed max_seconds")
    if s.batch_size > MAX_BATCH:
        raise InvalidArgument(f"{field}.batch_size", f"{s.batch_size} exceeds {MAX_BATCH}")
    if s.format == common_pb2.ARTIFACT_FORMAT_UNSPECIFIED:
        s.format = common_pb2.ONNX
    if s.precision == common_pb2.PRECISION_UNSPECIFIED:
        s.precision = common_pb2.FP32
    if s.format != common_pb2.ONNX or s.precision != common_pb2.FP32:
        raise Unimplemented(f"{field}: only ONNX fp32 artifacts are served by this build")
    if s.input_shape and list(s.input_shape) != [s.batch_size, *arch.input_shape]:
        raise InvalidArgument(f"{field}.input_shape", "is set by the server from the architecture")
    del s.input_shape[:]
    s.input_shape.extend([s.batch_size, *arch.input_shape])
    return s


@dataclass
class LatencyRequest:
    device_class: str
    settings: common_pb2.MeasurementSettings   # resolved
    pending: PendingJob | None = None
    error: ServerError | None = None


class LatencyService:
    def __init__(
        self,
        fleet: Fleet,
        artifacts: ArtifactStore,
        export: Callable[[ParsedArch, int], bytes],
        default_timeout: float = 120.0,
    ) -> None:
        self.fleet = fleet
        self.artifacts = artifacts
        self._export = export
        self.default_timeout = default_timeout
        self._by_arch: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def check_device_class(self, device_class: str, field: str) -> None:
        if not device_class:
            raise InvalidArgument(field, "device_class is empty")
        if not self.fleet.is_known(device_class):
            raise NotFound(f"{field}: unknown device class '{device_class}' (no agent has "
                           "registered it)")

    def artifact_for(self, arch: ParsedArch, batch_size: int) -> tuple[str, bytes]:
        key = (arch.arch_hash, batch_size)
        with self._lock:
            sha = self._by_arch.get(key)
        data = self.artifacts.get(sha) if sha else None
        if data is None:
            data = self._export(arch, batch_size)
            sha = self.artifacts.put(data)
            with self._lock:
                self._by_arch[key] = sha
        return sha, data

    def start(self, arch: ParsedArch, target: LatencyRequest, timeout: float) -> None:
        """Export and enqueue; an export failure becomes the item's error, not the request's."""
        try:
            sha, data = self.artifact_for(arch, target.settings.batch_size)
        except ServerError as exc:
            target.error = exc
            return
        job = agent_pb2.Job(
            artifact=agent_pb2.Artifact(
                sha256=sha, format=target.settings.format, precision=target.settings.precision,
                data=data, input_name="input", space=arch.space, canonical_arch=arch.canonical),
            settings=target.settings,
            timeout_seconds=timeout,
        )
        target.pending = self.fleet.submit(target.device_class, job)

    def wait(self, target: LatencyRequest, deadline: float) -> common_pb2.LatencyResult:
        result = common_pb2.LatencyResult(device_class=target.device_class)
        result.settings.CopyFrom(target.settings)
        if target.error is not None:
            result.status.code = target.error.code.value[0]
            result.status.message = target.error.message
            result.status.failure_kind = common_pb2.EXPORT_FAILED
            return result
        pending = target.pending
        assert pending is not None
        result.job_id = pending.job.job_id
        result.artifact_sha256 = pending.job.artifact.sha256
        try:
            outcome: JobOutcome = pending.future.result(timeout=max(0.0, deadline - time.time()))
        except FutureTimeout:
            self.fleet.cancel(pending)
            outcome = pending.future.result()
            outcome.detail = (f"no measurement from device class '{target.device_class}' "
                              "within the latency timeout")
        result.agent_id = outcome.agent_id
        if outcome.ok:
            r = outcome.result
            result.provenance = common_pb2.MEASURED
            result.stats.CopyFrom(r.stats)
            result.settings.CopyFrom(r.settings)
            result.runtime, result.runtime_version = r.runtime, r.runtime_version
            result.execution_provider = r.execution_provider
            result.env_before.CopyFrom(r.env_before)
            result.env_after.CopyFrom(r.env_after)
            result.throttled = r.throttled
        else:
            code = _FAILURE_CODES.get(outcome.failure_kind, grpc.StatusCode.INTERNAL)
            result.status.code = code.value[0]
            result.status.message = outcome.detail
            result.status.failure_kind = outcome.failure_kind
        return result
