"""What one latency item comes to, and the one place it becomes the LatencyResult a client sees.

`LatencyService.resolve` decides `Predicted`, `Cached`, `Pending` (a job on a board) or `Failed`;
a pending job ends `Measured` or `Failed` (`finished`); `to_result` writes any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import grpc

from edgescore.server.errors import ServerError, bounded, reads_as_out_of_memory
from edgescore.server.fleet.exports import Artifact
from edgescore.server.fleet.jobs import Ticket
from edgescore.server.fleet.measurement import Target
from edgescore.server.fleet.sessions import JobOutcome
from edgescore.v1 import agent_pb2, common_pb2

# Failure kind → the per-item status code the client sees (the table in common.proto's error
# model). RUNTIME_ERROR is the board's runtime refusing or failing the artifact: see `_code`.
_FAILURE_CODES = {
    common_pb2.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    common_pb2.AGENT_LOST: grpc.StatusCode.UNAVAILABLE,
    common_pb2.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    common_pb2.UNSUPPORTED_FORMAT: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.UNSUPPORTED_ACCELERATOR: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.UNSUPPORTED_OP: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.PARITY_FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.EXPORT_FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    common_pb2.ARTIFACT_CORRUPT: grpc.StatusCode.DATA_LOSS,
    common_pb2.RUNTIME_ERROR: grpc.StatusCode.FAILED_PRECONDITION,
}


def _code(failure_kind: int, detail: str) -> grpc.StatusCode:
    """The status of a job's failure. A runtime that ran out of memory (onnxruntime's arena, a
    measurement process the kernel killed) is RESOURCE_EXHAUSTED; one that refused the model (a
    graph it cannot load, a dim of 0, a shape it cannot infer) is FAILED_PRECONDITION: the
    artifact is valid ONNX that this board's runtime cannot run. An unknown kind stays INTERNAL."""
    if failure_kind == common_pb2.RUNTIME_ERROR and reads_as_out_of_memory(detail):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return _FAILURE_CODES.get(failure_kind, grpc.StatusCode.INTERNAL)


@dataclass(frozen=True)
class Predicted:
    """The latency predictor's answer (allow_predicted, and no agent of the class online)."""

    median_ms: float
    uncertainty_ms: float


@dataclass(frozen=True)
class Measured:
    """An agent's measurement of the artifact, from the job this request waited on."""

    artifact: Artifact
    job_id: str
    agent_id: str
    result: agent_pb2.JobResult


@dataclass(frozen=True)
class Cached(Measured):
    """A stored measurement of the artifact under the same settings: no job was needed."""


@dataclass(frozen=True)
class Pending:
    """A job on the class's board (possibly shared with identical requests) to wait for."""

    artifact: Artifact
    ticket: Ticket


@dataclass(frozen=True)
class Failed:
    """A per-item failure; the artifact, job and agent when it got that far."""

    code: grpc.StatusCode
    message: str
    failure_kind: int
    artifact: Optional[Artifact] = None
    job_id: str = ""
    agent_id: str = ""

    @classmethod
    def export(cls, exc: ServerError) -> Failed:
        """The artifact could not be made (or an upload is not valid for this target)."""
        return cls(exc.code, exc.message, getattr(exc, "failure_kind", common_pb2.EXPORT_FAILED))


Resolved = Union[Predicted, Cached, Pending, Failed]
Final = Union[Predicted, Measured, Failed]


def finished(pending: Pending, job: JobOutcome, device_class: str) -> Measured | Failed:
    """What a pending job ended with (not a server shutdown: that job resumes after the restart,
    and the caller answers UNAVAILABLE)."""
    job_id = pending.ticket.job_id
    if job.ok:
        assert job.result is not None
        return Measured(pending.artifact, job_id, job.agent_id, job.result)
    detail = job.detail
    if job.failure_kind == common_pb2.TIMEOUT and not detail:
        detail = f"no measurement from device class '{device_class}' within the latency timeout"
    return Failed(_code(job.failure_kind, detail), bounded(detail), job.failure_kind,
                  pending.artifact, job_id, job.agent_id)


def to_result(target: Target, outcome: Final) -> common_pb2.LatencyResult:
    result = common_pb2.LatencyResult(device_class=target.device_class)
    result.settings.CopyFrom(target.settings)
    if isinstance(outcome, Predicted):
        result.provenance = common_pb2.PREDICTED
        result.stats.median_ms = outcome.median_ms
        result.uncertainty_ms = outcome.uncertainty_ms
        result.runtime = "latency-predictor"
        return result
    if outcome.artifact is not None:
        result.quantization = outcome.artifact.quantization
        result.artifact_sha256 = outcome.artifact.sha256
    result.job_id, result.agent_id = outcome.job_id, outcome.agent_id
    if isinstance(outcome, Failed):
        result.status.code = outcome.code.value[0]
        result.status.message = outcome.message
        result.status.failure_kind = outcome.failure_kind
        return result
    r = outcome.result
    result.provenance = common_pb2.CACHED if isinstance(outcome, Cached) else common_pb2.MEASURED
    result.stats.CopyFrom(r.stats)
    result.settings.CopyFrom(r.settings)
    # An agent that leaves these unset measured what it was sent.
    result.settings.format = r.settings.format or target.settings.format
    result.settings.precision = r.settings.precision or target.settings.precision
    result.runtime, result.runtime_version = r.runtime, r.runtime_version
    result.execution_provider = r.execution_provider
    result.execution_providers_used.extend(r.execution_providers_used)
    result.provider_fallback = r.provider_fallback
    result.delegate = r.delegate
    result.nodes_per_provider.update(r.nodes_per_provider)
    result.energy.CopyFrom(r.energy)
    result.env_before.CopyFrom(r.env_before)
    result.env_after.CopyFrom(r.env_after)
    result.throttled = r.throttled
    result.thermal.CopyFrom(r.thermal)
    return result
