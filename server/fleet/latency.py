"""Latency of one architecture on one device class: export once, queue a job, wait for an agent.

Every knob of the measurement protocol is resolved here, sent in the job, and echoed in the
result, so a latency is never detached from how it was measured.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Optional

import grpc
from google.protobuf import json_format

from edgescore.server.errors import InvalidArgument, NotFound, ServerError, Unavailable
from edgescore.server.export.artifacts import ArtifactStore
from edgescore.server.export.exporter import EXPORT_SEED, Exporter
from edgescore.server.export.result import FORMAT_NAMES, PRECISION_NAMES, ExportResult
from edgescore.server.fleet.fleet import Fleet, JobOutcome, PendingJob
from edgescore.server.scoring.predictor import Prediction, PredictorBank
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import MeasurementKey, Store, canonical_json
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

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

# EXPORT_SEED lives with the exporter now; re-exported for code that imported it from here.
__all__ = ["EXPORT_SEED", "LatencyRequest", "LatencyService", "resolve_measurement"]

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
        if not 0 <= getattr(s, name) < math.inf:  # NaN fails this too
            raise InvalidArgument(f"{field}.{name}", "must be a finite number >= 0")
    for name, cap in (("warmup_runs", MAX_WARMUP_RUNS), ("min_runs", MAX_MIN_RUNS),
                      ("max_seconds", MAX_SECONDS_CAP)):
        value = getattr(s, name)
        if value > cap:
            raise InvalidArgument(f"{field}.{name}", f"{value:g} exceeds the cap {cap:g}"
                                  if isinstance(value, float) else f"{value} exceeds the cap {cap}")
    if s.min_seconds > s.max_seconds:
        raise InvalidArgument(f"{field}.min_seconds", "must not exceed max_seconds")
    if s.batch_size > MAX_BATCH:
        raise InvalidArgument(f"{field}.batch_size", f"{s.batch_size} exceeds {MAX_BATCH}")
    if s.format == common_pb2.ARTIFACT_FORMAT_UNSPECIFIED:
        s.format = common_pb2.ONNX
    if s.precision == common_pb2.PRECISION_UNSPECIFIED:
        s.precision = common_pb2.FP32
    if s.format not in FORMAT_NAMES:
        raise InvalidArgument(f"{field}.format", f"unknown artifact format {s.format}")
    if s.precision not in PRECISION_NAMES:
        raise InvalidArgument(f"{field}.precision", f"unknown precision {s.precision}")
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
    quantization: str = ""                     # of the artifact sent, see ExportResult
    cached: agent_pb2.JobResult | None = None  # a stored measurement: no job was sent
    predicted: Prediction | None = None        # the predictor answered: no job was sent
    cached_agent: str = ""
    artifact_sha256: str = ""
    job_key: tuple[str, str, str, str] | None = None  # (sha256, class, settings, arch)


def _settings_json(settings: common_pb2.MeasurementSettings) -> str:
    return canonical_json(json_format.MessageToDict(settings, preserving_proto_field_name=True))


@dataclass(frozen=True)
class _Artifact:
    sha256: str
    quantization: str


# (export hash, class count, resolution, format, precision, batch size)
ArtifactKey = tuple[str, int, int, int, int, int]


def _shape(arch: ParsedArch) -> tuple[int, int]:
    return (arch.num_classes, arch.input_resolution)


class LatencyService:
    def __init__(
        self,
        fleet: Fleet,
        artifacts: ArtifactStore,
        exporter: Exporter,
        default_timeout: float = 120.0,
        store: Optional[Store] = None,
        on_lookup: Callable[[bool], None] = lambda hit: None,
        predictors: Optional[PredictorBank] = None,
        on_job_done: Callable[[str, JobOutcome, float], None] = lambda cls, outcome, s: None,
    ) -> None:
        self.fleet = fleet
        self._on_job_done = on_job_done  # (device class, outcome, seconds since submission)
        self.artifacts = artifacts
        self._exporter = exporter
        self.default_timeout = default_timeout
        self.store = store
        self._on_lookup = on_lookup
        self.predictors = predictors
        self._predictor_loaded: set[str] = set()  # classes whose stored measurements it has
        self._by_key: dict[ArtifactKey, _Artifact] = {}
        self._key_locks: dict[ArtifactKey, threading.Lock] = {}
        self._lock = threading.Lock()
        # Identical jobs waiting or running: one job, every request waits on it. Two spellings
        # that export to one artifact (NB201 edges that cannot reach the output) share a job
        # when the class's agents time artifacts; a replay agent answers by the spelling, so
        # there (and while no agent is online to say which) the spelling is part of the key.
        self._shared: dict[tuple[str, str, str, str], tuple[PendingJob, int]] = {}
        self._job_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
        if store is not None:
            fleet.on_dispatch = lambda pending, agent_id: store.start_job(
                pending.job.job_id, agent_id)
            fleet.on_requeue = lambda pending, reason: store.requeue_job(
                pending.job.job_id, reason)

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

    def predict(self, arch: ParsedArch, target: LatencyRequest) -> bool:
        """Answer from the predictor when no agent of the class is online (allow_predicted)."""
        if self.fleet.agents_online(target.device_class) > 0:
            return False
        bank = self._predictor_for(target.device_class)
        prediction = bank.predict(target.device_class, arch.space, arch.canonical,
                                  _shape(arch), target.settings) if bank else None
        target.predicted = prediction
        return prediction is not None

    def artifact_for(self, arch: ParsedArch, fmt: int, precision: int,
                     batch_size: int) -> tuple[str, bytes, str]:
        """(sha256, bytes, quantization) of the artifact, exported at most once per key."""
        key = (arch.export_hash, arch.num_classes, arch.input_resolution, fmt, precision,
               batch_size)
        with self._lock:
            # One lock per key: concurrent requests for the same artifact wait for one export
            # (a TFLite conversion takes seconds) instead of each running their own.
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                known = self._by_key.get(key)
            data = self.artifacts.get(known.sha256) if known else None
            if known is not None and data is not None:
                return known.sha256, data, known.quantization
            fp32 = None
            if precision != common_pb2.FP32:
                # The int8 artifact is quantized from the float one: convert once for both.
                fp32 = self.artifact_for(arch, fmt, common_pb2.FP32, batch_size)[1]
            result: ExportResult = self._exporter.export(arch, fmt, precision, batch_size, fp32)
            sha = self.artifacts.put(result.data)
            with self._lock:
                self._by_key[key] = _Artifact(sha, result.quantization)
            return sha, result.data, result.quantization

    def start(self, arch: ParsedArch, target: LatencyRequest, timeout: float, *,
              allow_predicted: bool = False, use_store: bool = True, job_id: str = "",
              priority: int = 0) -> None:
        """Predict (allow_predicted, no agent online), else export, then answer from the store
        (use_store) or enqueue, joining an identical pending job; an export failure becomes the
        item's error, not the request's."""
        if allow_predicted and self.predict(arch, target):
            return
        s = target.settings
        try:
            sha, data, target.quantization = self.artifact_for(
                arch, s.format, s.precision, s.batch_size)
        except ServerError as exc:
            target.error = exc
            return
        target.artifact_sha256 = sha
        settings_json = _settings_json(s)
        if use_store and self._from_store(target, sha, settings_json, arch.as_spelled):
            return
        spelled = "" if self.fleet.times_artifacts(target.device_class) else arch.as_spelled
        key = (sha, target.device_class, settings_json, spelled)
        with self._lock:
            job_lock = self._job_locks.setdefault(key, threading.Lock())
        # Never submit under self._lock: the fleet completes jobs (and runs _job_done, which
        # takes self._lock) while holding its own lock, so that order would deadlock.
        with job_lock:
            with self._lock:
                shared = self._shared.get(key)
                joined = shared is not None and not shared[0].future.done()
                if joined:
                    self._shared[key] = (shared[0], shared[1] + 1)
                    target.pending, target.job_key = shared[0], key
            if joined:
                self.fleet.raise_priority(shared[0], priority)  # outside self._lock, as submit
                return
            job = agent_pb2.Job(
                artifact=agent_pb2.Artifact(
                    sha256=sha, format=s.format, precision=s.precision, data=data,
                    input_name=getattr(arch.payload, "input_name", "input"),
                    space=arch.space, canonical_arch=arch.as_spelled,
                    num_classes=arch.num_classes),
                settings=s,
                timeout_seconds=timeout,
                job_id=job_id or self.fleet.new_job_id(),
            )
            # Recorded before it is submitted: an idle agent may take it at once, and the
            # store marks it running then.
            self._record_job(job.job_id, arch, target, timeout)
            submitted = time.monotonic()
            pending = self.fleet.submit(target.device_class, job, priority)
            with self._lock:
                self._shared[key] = (pending, 1)
            target.pending, target.job_key = pending, key
        pending.future.add_done_callback(
            lambda f: self._job_done(f, key, arch))
        pending.future.add_done_callback(lambda f: self._on_job_done(
            target.device_class, f.result(), time.monotonic() - submitted))

    def _record_job(self, job_id: str, arch: ParsedArch, target: LatencyRequest,
                    timeout: float) -> None:
        """Keep what it takes to submit the job again after a restart (resume_jobs)."""
        if self.store is None:
            return
        payload = canonical_json({
            "space": arch.space, "arch": arch.as_spelled, "num_classes": arch.num_classes,
            "input_resolution": arch.input_resolution, "timeout": timeout,
            "settings": json_format.MessageToDict(target.settings,
                                                  preserving_proto_field_name=True)})
        try:
            self.store.add_job(job_id, target.device_class, payload)
        except Exception:  # noqa: BLE001 - the job runs anyway; only its resumption is lost
            log.warning("could not record job %s", job_id, exc_info=True)

    def resume_jobs(self) -> int:
        """At start: submit again every job a previous server process left queued or running,
        under its old id, so its measurement lands in the store (and the next request for it is
        served from there). Returns how many were resubmitted."""
        if self.store is None:
            return 0
        from edgescore.server.spaces import registry as spaces

        self.store.requeue_inflight()  # running -> queued: every unfinished job is queued now
        resumed = 0
        for job in self.store.jobs(state="queued"):
            try:
                p = json.loads(job.payload_ref)
                arch = spaces.get_space(p["space"]).parse(p["arch"], p["num_classes"],
                                                          p["input_resolution"])
                settings = json_format.ParseDict(p["settings"],
                                                 common_pb2.MeasurementSettings())
                self.start(arch, LatencyRequest(job.device_class, settings), p["timeout"],
                           use_store=False, job_id=job.job_id)
                resumed += 1
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the start
                log.warning("could not resume job %s: %s", job.job_id, exc)
                self.store.finish_job(job.job_id, False, f"not resumed: {exc}")
        return resumed

    def _from_store(self, target: LatencyRequest, sha: str, settings_json: str,
                    canonical: str) -> bool:
        if self.store is None:
            return False
        try:
            records = self.store.find_measurements(sha, target.device_class, settings_json)
        except Exception:  # noqa: BLE001 - the store is a cache: measure when it is unreadable
            log.warning("measurement lookup failed", exc_info=True)
            records = []
        hit = next((r for r in records if "job_result" in r.stats and r.holds_for(canonical)),
                   None)
        self._on_lookup(hit is not None)
        if hit is None:
            return False
        target.cached = json_format.ParseDict(hit.stats["job_result"], agent_pb2.JobResult(),
                                              ignore_unknown_fields=True)
        target.cached_agent = hit.agent_id
        return True

    def _job_done(self, future: Future, key: tuple[str, str, str, str], arch: ParsedArch
                  ) -> None:
        """Once per job (not per waiter): forget it as shared, keep a measurement."""
        with self._lock:
            shared = self._shared.get(key)
            if shared is not None and shared[0].future is future:
                del self._shared[key]
                self._job_locks.pop(key, None)
        outcome: JobOutcome = future.result()
        if outcome.shutdown:
            return  # not finished: its record stays queued for the next server process
        if self.store is not None:
            try:
                self.store.finish_job(outcome.job_id, outcome.ok, outcome.detail)
            except Exception:  # noqa: BLE001
                log.warning("could not finish job record %s", outcome.job_id, exc_info=True)
        if not outcome.ok:
            return
        r = outcome.result
        sha, device_class, settings_json, _ = key
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

    def _give_up(self, target: LatencyRequest) -> JobOutcome:
        """This waiter's deadline passed: cancel the job only if nobody else waits for it."""
        pending = target.pending
        assert pending is not None
        with self._lock:
            shared = self._shared.get(target.job_key) if target.job_key else None
            others = shared is not None and shared[0] is pending and shared[1] > 1
            if others:
                self._shared[target.job_key] = (pending, shared[1] - 1)
        if others:
            outcome = JobOutcome(pending.job.job_id, failure_kind=common_pb2.TIMEOUT)
        else:
            self.fleet.cancel(pending)
            outcome = pending.future.result()
        outcome.detail = (f"no measurement from device class '{target.device_class}' "
                          "within the latency timeout")
        return outcome

    def wait(self, target: LatencyRequest, deadline: float) -> common_pb2.LatencyResult:
        result = common_pb2.LatencyResult(device_class=target.device_class,
                                          quantization=target.quantization)
        result.settings.CopyFrom(target.settings)
        if target.error is not None:
            result.status.code = target.error.code.value[0]
            result.status.message = target.error.message
            result.status.failure_kind = getattr(target.error, "failure_kind",
                                                 common_pb2.EXPORT_FAILED)
            return result
        if target.predicted is not None:
            p = target.predicted
            result.provenance = common_pb2.PREDICTED
            result.stats.median_ms = p.median_ms
            result.uncertainty_ms = p.uncertainty_ms
            result.runtime = "latency-predictor"
            return result
        if target.cached is not None:
            result.job_id = target.cached.job_id
            result.artifact_sha256 = target.artifact_sha256
            result.agent_id = target.cached_agent
            self._fill_measured(result, target, target.cached)
            result.provenance = common_pb2.CACHED
            return result
        pending = target.pending
        assert pending is not None
        result.job_id = pending.job.job_id
        result.artifact_sha256 = pending.job.artifact.sha256
        try:
            outcome: JobOutcome = pending.future.result(timeout=max(0.0, deadline - time.time()))
        except FutureTimeout:
            outcome = self._give_up(target)
        if outcome.shutdown:
            # The whole call is retryable: the restarted server resumes the job and serves it.
            raise Unavailable(outcome.detail)
        result.agent_id = outcome.agent_id
        if outcome.ok:
            self._fill_measured(result, target, outcome.result)
        else:
            code = _FAILURE_CODES.get(outcome.failure_kind, grpc.StatusCode.INTERNAL)
            result.status.code = code.value[0]
            result.status.message = outcome.detail
            result.status.failure_kind = outcome.failure_kind
        return result

    @staticmethod
    def _fill_measured(result: common_pb2.LatencyResult, target: LatencyRequest,
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
