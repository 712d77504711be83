"""A latency item's outcomes and the LatencyResult each one becomes (no server, no agent)."""

from __future__ import annotations

import grpc

from edgescore.server.errors import NotFound
from edgescore.server.fleet.exports import Artifact
from edgescore.server.fleet.jobs import JobSpec, Subject, Ticket
from edgescore.server.fleet.measurement import Target
from edgescore.server.fleet.outcomes import (
    Cached,
    Failed,
    Measured,
    Pending,
    Predicted,
    finished,
    to_result,
)
from edgescore.server.fleet.sessions import JobOutcome
from edgescore.v1 import agent_pb2, common_pb2

TARGET = Target("pi4", common_pb2.MeasurementSettings(format=common_pb2.TFLITE,
                                                       precision=common_pb2.INT8, min_runs=50))
ARTIFACT = Artifact("ab" * 32, b"bytes", "static-int8")
SUBJECT = Subject("nb201", "arch", "arch", 10, 32)
PENDING = Pending(ARTIFACT, Ticket(JobSpec(("ab", "pi4", "{}", ""), "pi4", agent_pb2.Job(), "",
                                           SUBJECT), "job-1", None))


def measured_by_agent() -> agent_pb2.JobResult:
    # The agent leaves format and precision unset: it measured what it was sent.
    return agent_pb2.JobResult(job_id="job-1", runtime="onnxruntime",
                               stats=common_pb2.LatencyStats(median_ms=12.5),
                               settings=common_pb2.MeasurementSettings(min_runs=50))


def test_a_prediction_names_the_predictor_and_no_artifact() -> None:
    result = to_result(TARGET, Predicted(3.0, 0.5))
    assert result.provenance == common_pb2.PREDICTED and result.runtime == "latency-predictor"
    assert (result.stats.median_ms, result.uncertainty_ms) == (3.0, 0.5)
    assert result.settings == TARGET.settings and not result.artifact_sha256
    assert result.status.code == 0


def test_a_measurement_and_a_stored_one_differ_only_in_provenance() -> None:
    fresh = to_result(TARGET, Measured(ARTIFACT, "job-1", "pi4-a", measured_by_agent()))
    stored = to_result(TARGET, Cached(ARTIFACT, "job-1", "pi4-a", measured_by_agent()))
    assert (fresh.provenance, stored.provenance) == (common_pb2.MEASURED, common_pb2.CACHED)
    stored.provenance = fresh.provenance
    assert stored == fresh
    assert (fresh.job_id, fresh.agent_id, fresh.stats.median_ms) == ("job-1", "pi4-a", 12.5)
    assert (fresh.artifact_sha256, fresh.quantization) == (ARTIFACT.sha256, "static-int8")
    assert (fresh.settings.format, fresh.settings.precision) == (common_pb2.TFLITE,
                                                                 common_pb2.INT8)


def test_a_failed_export_has_its_status_and_no_job() -> None:
    result = to_result(TARGET, Failed.export(NotFound("no such thing")))
    assert result.status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert result.status.failure_kind == common_pb2.EXPORT_FAILED
    assert not result.job_id and not result.artifact_sha256


def test_a_job_ends_measured_or_failed_with_the_status_of_its_failure_kind() -> None:
    ok = finished(PENDING, JobOutcome("job-1", "pi4-a", result=measured_by_agent()), "pi4")
    assert ok == Measured(ARTIFACT, "job-1", "pi4-a", measured_by_agent())
    timeout = finished(PENDING, JobOutcome("job-1", failure_kind=common_pb2.TIMEOUT), "pi4")
    assert isinstance(timeout, Failed)
    assert timeout.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert timeout.message == ("no measurement from device class 'pi4' within the latency "
                               "timeout")
    lost = to_result(TARGET, finished(PENDING, JobOutcome(
        "job-1", "pi4-a", failure_kind=common_pb2.AGENT_LOST, detail="gone"), "pi4"))
    assert (lost.status.code, lost.status.message) == (grpc.StatusCode.UNAVAILABLE.value[0],
                                                       "gone")
    assert (lost.job_id, lost.agent_id, lost.artifact_sha256) == ("job-1", "pi4-a",
                                                                  ARTIFACT.sha256)
    assert lost.settings == TARGET.settings
