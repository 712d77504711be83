"""Latency of one architecture on one device class: predicted, stored, or measured by an agent.

`measure` is one request's path, in order: the predictor (allow_predicted, no agent online), the
artifact (exported once on the compute plane), a stored measurement of that artifact under the
same protocol, else a job on the class's board, shared with identical requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import grpc
from google.protobuf import json_format

from edgescore.server.compute.plane import Caller
from edgescore.server.compute.units import ArchRef
from edgescore.server.errors import InvalidArgument, NotFound, ServerError, Unavailable
from edgescore.server.fleet.exports import Artifact, Exports
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.jobs import JobBoard, JobSpec, LocalJobs, Subject
from edgescore.server.fleet.sessions import JobOutcome
from edgescore.server.scoring.predictor import Prediction, PredictorBank
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import MeasurementKey, Store, canonical_json
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

RESUME = Caller("resume", wait_for_room=True)  # exports of jobs a previous process left

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


@dataclass(frozen=True)
class Target:
    """One device class a request wants a latency on, with its resolved measurement settings."""

    device_class: str
    settings: common_pb2.MeasurementSettings


def _settings_json(settings: common_pb2.MeasurementSettings) -> str:
    return canonical_json(json_format.MessageToDict(settings, preserving_proto_field_name=True))


def _shape(arch: ParsedArch) -> tuple[int, int]:
    return (arch.num_classes, arch.input_resolution)


def _fail(result: common_pb2.LatencyResult, code: grpc.StatusCode, message: str,
          failure_kind: int) -> common_pb2.LatencyResult:
    result.status.code = code.value[0]
    result.status.message = message
    result.status.failure_kind = failure_kind
    return result


class LatencyService:
    def __init__(self, fleet: Fleet, exports: Exports, default_timeout: float = 120.0,
                 store: Optional[Store] = None,
                 on_lookup: Callable[[bool], None] = lambda hit: None,
                 predictors: Optional[PredictorBank] = None,
                 on_job_done: Callable[[str, JobOutcome, float], None] = lambda c, o, s: None,
                 jobs: Optional[JobBoard] = None) -> None:
        self.fleet, self.exports, self.store = fleet, exports, store
        self.default_timeout = default_timeout
        self._on_lookup = on_lookup
        self.predictors = predictors
        self._predictor_loaded: set[str] = set()  # classes whose stored measurements it has
        self._lock = threading.Lock()
        self.jobs = jobs or LocalJobs(fleet, store, on_job_done=on_job_done)
        self.jobs.on_result = self._keep

    # -- device classes and the predictor -------------------------------------------------------

    def check_device_class(self, device_class: str, field: str,
                           allow_predicted: bool = False, space: str = "") -> None:
        if not device_class:
            raise InvalidArgument(field, "device_class is empty")
        if self.fleet.is_known(device_class) or self._seen_before(device_class):
            return
        bank = self._predictor_for(device_class) if allow_predicted else None
        if bank is not None and bank.has_measurements(device_class, space):
            return  # measured before (e.g. before a restart): the predictor can answer
        raise NotFound(f"{field}: unknown device class '{device_class}' (no agent has "
                       "registered it)")

    def _seen_before(self, device_class: str) -> bool:
        """An agent of the class registered with this store (e.g. before a restart): its job
        waits for an agent to come back, within the latency timeout, rather than NOT_FOUND
        while the agents are still reconnecting."""
        if self.store is None:
            return False
        try:
            return bool(self.store.agents_seen(device_class))
        except Exception:  # noqa: BLE001 - an unreadable store: the class is unknown
            log.warning("could not read the agents seen", exc_info=True)
            return False

    def _predictor_for(self, device_class: str) -> Optional[PredictorBank]:
        """The bank, with this class's stored measurements loaded once; None if it has none."""
        if self.predictors is None:
            return None
        with self._lock:
            fresh = device_class not in self._predictor_loaded
            self._predictor_loaded.add(device_class)
        if fresh and self.store is not None:
            try:
                self.predictors.load(self.store, [device_class])
            except Exception:  # noqa: BLE001 - no prediction is better than a failed request
                log.warning("could not load measurements of %s for the predictor", device_class,
                            exc_info=True)
        return self.predictors

    def predict(self, arch: ParsedArch, target: Target) -> Optional[Prediction]:
        """The predictor's answer when no agent of the class is online (allow_predicted)."""
        if self.fleet.agents_online(target.device_class) > 0:
            return None
        bank = self._predictor_for(target.device_class)
        return bank.predict(target.device_class, arch.space, arch.canonical, _shape(arch),
                            target.settings) if bank else None

    # -- one request's latency ------------------------------------------------------------------

    async def measure(self, arch: ParsedArch, ref: ArchRef, target: Target, timeout: float,
                      deadline: float, caller: Caller, *, allow_predicted: bool = False,
                      use_store: bool = True, priority: int = 0) -> common_pb2.LatencyResult:
        """The latency item of one request; `deadline` (monotonic) bounds the wait for a job,
        `timeout` is what the job itself is given. Per-item failures are in its status."""
        result = common_pb2.LatencyResult(device_class=target.device_class)
        result.settings.CopyFrom(target.settings)
        if allow_predicted:
            prediction = await asyncio.to_thread(self.predict, arch, target)
            if prediction is not None:
                result.provenance = common_pb2.PREDICTED
                result.stats.median_ms = prediction.median_ms
                result.uncertainty_ms = prediction.uncertainty_ms
                result.runtime = "latency-predictor"
                return result
        s = target.settings
        try:
            artifact = await self.exports.get(arch, ref, s.format, s.precision, s.batch_size,
                                              caller)
        except ServerError as exc:
            return _fail(result, exc.code, exc.message,
                         getattr(exc, "failure_kind", common_pb2.EXPORT_FAILED))
        result.quantization, result.artifact_sha256 = artifact.quantization, artifact.sha256
        settings_json = _settings_json(s)
        if use_store:
            hit = await asyncio.to_thread(self._from_store, target.device_class,
                                          artifact.sha256, settings_json, arch.as_spelled)
            if hit is not None:
                job_result, result.agent_id = hit
                result.job_id = job_result.job_id
                self._fill_measured(result, target, job_result)
                result.provenance = common_pb2.CACHED
                return result
        spelled = arch.as_spelled if self.jobs.spelling_matters(target.device_class) else ""
        spec = JobSpec((artifact.sha256, target.device_class, settings_json, spelled),
                       target.device_class, self._job(arch, target, artifact, timeout),
                       self._record(arch, target, timeout), Subject.of(arch), priority)
        ticket = await self.jobs.submit(spec)
        result.job_id = ticket.job_id
        outcome = await self.jobs.wait(ticket, deadline)
        if outcome.shutdown:
            # The whole call is retryable: the restarted server resumes the job and serves it.
            raise Unavailable(outcome.detail)
        result.agent_id = outcome.agent_id
        if outcome.ok:
            self._fill_measured(result, target, outcome.result)
            return result
        detail = outcome.detail
        if outcome.failure_kind == common_pb2.TIMEOUT and not detail:
            detail = (f"no measurement from device class '{target.device_class}' within the "
                      "latency timeout")
        return _fail(result, _FAILURE_CODES.get(outcome.failure_kind, grpc.StatusCode.INTERNAL),
                     detail, outcome.failure_kind)

    def _job(self, arch: ParsedArch, target: Target, artifact: Artifact, timeout: float
             ) -> agent_pb2.Job:
        s = target.settings
        return agent_pb2.Job(
            artifact=agent_pb2.Artifact(
                sha256=artifact.sha256, format=s.format, precision=s.precision,
                data=artifact.data, input_name=getattr(arch.payload, "input_name", "input"),
                space=arch.space, canonical_arch=arch.as_spelled, num_classes=arch.num_classes),
            settings=s, timeout_seconds=timeout, job_id=self.fleet.new_job_id())

    @staticmethod
    def _record(arch: ParsedArch, target: Target, timeout: float) -> str:
        """What it takes to submit the job again after a restart (resume_jobs)."""
        return canonical_json({
            "space": arch.space, "arch": arch.as_spelled, "num_classes": arch.num_classes,
            "input_resolution": arch.input_resolution, "timeout": timeout,
            "settings": json_format.MessageToDict(target.settings,
                                                  preserving_proto_field_name=True)})

    def _from_store(self, device_class: str, sha: str, settings_json: str, spelled: str
                    ) -> Optional[tuple[agent_pb2.JobResult, str]]:
        if self.store is None:
            return None
        try:
            records = self.store.find_measurements(sha, device_class, settings_json)
        except Exception:  # noqa: BLE001 - the store is a cache: measure when it is unreadable
            log.warning("measurement lookup failed", exc_info=True)
            records = []
        hit = next((r for r in records if "job_result" in r.stats and r.holds_for(spelled)),
                   None)
        self._on_lookup(hit is not None)
        if hit is None:
            return None
        return (json_format.ParseDict(hit.stats["job_result"], agent_pb2.JobResult(),
                                      ignore_unknown_fields=True), hit.agent_id)

    def _keep(self, spec: JobSpec, outcome: JobOutcome) -> None:
        """Once per measured job: the predictor learns it and the store keeps it."""
        r, arch = outcome.result, spec.subject
        sha, device_class, settings_json, _ = spec.key
        if self.predictors is not None and r.stats.median_ms > 0:
            try:
                self.predictors.observe(device_class, arch.space, arch.canonical,
                                        r.stats.median_ms, _shape(arch), settings_json)
            except KeyError:
                pass  # a space without latency features
        if self.store is None:
            return
        stats = json_format.MessageToDict(r.stats, preserving_proto_field_name=True)
        stats["job_result"] = json_format.MessageToDict(r, preserving_proto_field_name=True)
        stats["by_architecture"] = outcome.by_architecture
        stats["arch_shape"] = list(_shape(arch))  # the predictor learns per shape
        try:
            self.store.put_measurement(
                MeasurementKey(sha, device_class, r.runtime, r.runtime_version, settings_json,
                               arch.as_spelled if outcome.by_architecture else ""),
                stats, agent_id=outcome.agent_id, space=arch.space, arch=arch.as_spelled)
        except Exception:  # noqa: BLE001 - the client still gets its result
            log.warning("could not store the measurement of job %s", outcome.job_id,
                        exc_info=True)

    # -- restarts -------------------------------------------------------------------------------

    async def resume_jobs(self) -> int:
        """At start: the jobs a previous server process (or replica) left unfinished go on."""
        return await self.jobs.resume(self._rebuild)

    async def _rebuild(self, record: Any) -> JobSpec:
        """The job of a stored record, under its own id, its artifact exported again."""
        from edgescore.server.spaces import registry as spaces

        p = json.loads(record.payload_ref)
        arch = spaces.get_space(p["space"]).parse(p["arch"], p["num_classes"],
                                                  p["input_resolution"])
        ref = ArchRef(p["space"], p["arch"], p["num_classes"], p["input_resolution"])
        s = json_format.ParseDict(p["settings"], common_pb2.MeasurementSettings())
        target = Target(record.device_class, s)
        artifact = await self.exports.get(arch, ref, s.format, s.precision, s.batch_size,
                                          RESUME)
        message = self._job(arch, target, artifact, p["timeout"])
        message.job_id = record.job_id
        spelled = arch.as_spelled if self.jobs.spelling_matters(record.device_class) else ""
        return JobSpec((artifact.sha256, record.device_class, _settings_json(s), spelled),
                       record.device_class, message, record.payload_ref, Subject.of(arch))

    @staticmethod
    def _fill_measured(result: common_pb2.LatencyResult, target: Target,
                       r: agent_pb2.JobResult) -> None:
        result.provenance = common_pb2.MEASURED
        result.stats.CopyFrom(r.stats)
        result.settings.CopyFrom(r.settings)
        # An agent that leaves these unset measured what it was sent.
        result.settings.format = r.settings.format or target.settings.format
        result.settings.precision = r.settings.precision or target.settings.precision
        result.runtime, result.runtime_version = r.runtime, r.runtime_version
        result.execution_provider = r.execution_provider
        result.env_before.CopyFrom(r.env_before)
        result.env_after.CopyFrom(r.env_after)
        result.throttled = r.throttled
        result.thermal.CopyFrom(r.thermal)

