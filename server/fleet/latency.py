"""Latency of one architecture on one device class: predicted, stored, or measured by an agent.

`target` checks a requested device class and resolves its measurement settings, before any work.
`measure` is then one item's path, in order: the predictor (allow_predicted, no agent online), the
artifact (exported once on the compute plane), a stored measurement of that artifact under the
same settings, else a job on the class's board, shared with identical requests; `resolve`
decides which, and `to_result` writes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Optional

from edgescore.server.compute.plane import Caller
from edgescore.server.compute.units import ArchRef
from edgescore.server.errors import InvalidArgument, NotFound, ServerError, Unavailable, shown
from edgescore.server.fleet.exports import Exports
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.jobs import JobBoard
from edgescore.server.fleet.local_jobs import LocalJobs
from edgescore.server.fleet.measurement import Target, resolve_measurement
from edgescore.server.fleet.outcomes import (
    Failed,
    Measured,
    Pending,
    Predicted,
    Resolved,
    finished,
    to_result,
)
from edgescore.server.fleet.prediction import Predictions
from edgescore.server.fleet.records import Records, job_spec, rebuild
from edgescore.server.fleet.sessions import JobOutcome
from edgescore.server.scoring.predictor import PredictorBank
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import Store
from edgescore.v1 import common_pb2


class LatencyService:
    def __init__(self, fleet: Fleet, exports: Exports, default_timeout: float = 120.0,
                 store: Optional[Store] = None,
                 on_lookup: Callable[[bool], None] = lambda hit: None,
                 predictors: Optional[PredictorBank] = None,
                 on_job_done: Callable[[str, JobOutcome, float], None] = lambda c, o, s: None,
                 jobs: Optional[JobBoard] = None) -> None:
        self.fleet, self.exports = fleet, exports
        self.default_timeout = default_timeout
        self.predictions = Predictions(predictors, store)
        self.records = Records(store, self.predictions, on_lookup)
        self.jobs = jobs or LocalJobs(fleet, store, on_job_done=on_job_done)
        self.jobs.on_result = self.records.keep

    def target(self, device: common_pb2.DeviceTarget, arch: ParsedArch, field: str,
               allow_predicted: bool = False) -> Target:
        """A requested device class, checked, with its settings resolved (`field`: e.g.
        "devices[0]", the prefix of error messages). Runs on a thread: it may read the store."""
        self._check_device_class(device.device_class, f"{field}.device_class", allow_predicted,
                                arch.space)
        return Target(device.device_class,
                      resolve_measurement(device.settings, arch, f"{field}.settings"))

    def _check_device_class(self, device_class: str, field: str,
                           allow_predicted: bool = False, space: str = "") -> None:
        if not device_class:
            raise InvalidArgument(field, "device_class is empty")
        if self.fleet.is_known(device_class) or self.records.seen_before(device_class):
            return
        if allow_predicted and self.predictions.has_measurements(device_class, space):
            return  # measured before (e.g. before a restart): the predictor can answer
        raise NotFound(f"{field}: unknown device class {shown(device_class)} (no agent has "
                       "registered it)")

    async def measure(self, arch: ParsedArch, ref: ArchRef, target: Target, timeout: float,
                      deadline: float, caller: Caller, *, allow_predicted: bool = False,
                      use_store: bool = True, priority: int = 0) -> common_pb2.LatencyResult:
        """The latency item of one request; `deadline` (monotonic) bounds the wait for a job,
        `timeout` is what the job itself is given. Per-item failures are in its status."""
        outcome = await self.resolve(arch, ref, target, timeout, caller,
                                     allow_predicted=allow_predicted, use_store=use_store,
                                     priority=priority)
        if isinstance(outcome, Pending):
            outcome = await self.wait(outcome, target, deadline)
        return to_result(target, outcome)

    async def resolve(self, arch: ParsedArch, ref: ArchRef, target: Target, timeout: float,
                      caller: Caller, *, allow_predicted: bool = False, use_store: bool = True,
                      priority: int = 0) -> Resolved:
        """Where this item's latency comes from; a job, when one is needed, is submitted."""
        if allow_predicted and self.fleet.agents_online(target.device_class) == 0:
            prediction = await asyncio.to_thread(self.predictions.predict, arch, target)
            if prediction is not None:
                return Predicted(prediction.median_ms, prediction.uncertainty_ms)
        s = target.settings
        try:
            artifact = await self.exports.get(arch, ref, s.format, s.precision, s.batch_size,
                                              caller)
        except ServerError as exc:
            return Failed.export(exc)
        if use_store:
            cached = await asyncio.to_thread(self.records.lookup, artifact, target,
                                             arch.as_spelled)
            if cached is not None:
                return cached
        spec = job_spec(arch, target, artifact, timeout, self.fleet.new_job_id(),
                        self.jobs.spelling_matters(target.device_class), priority)
        return Pending(artifact, await self.jobs.submit(spec))

    async def wait(self, pending: Pending, target: Target, deadline: float
                   ) -> Measured | Failed:
        """The pending job's end, or TIMEOUT at `deadline` (monotonic)."""
        job = await self.jobs.wait(pending.ticket, deadline)
        if job.shutdown:
            # The whole call is retryable: the restarted server resumes the job and serves it.
            raise Unavailable(job.detail)
        return finished(pending, job, target.device_class)

    async def resume_jobs(self) -> int:
        """At start: the jobs a previous server process (or replica) left unfinished go on."""
        return await self.jobs.resume(
            lambda record: rebuild(record, self.exports, self.jobs.spelling_matters))
