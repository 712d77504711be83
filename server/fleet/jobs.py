"""Latency jobs of one server process: identical requests share a job, every job is recorded in the
store (so a restart resumes it), and a job no request waits for any more is cancelled, on its
board too.

The queue itself is the in-memory `Fleet`; `shared_jobs.SharedJobs` is the same board for several
server replicas on one PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.sessions import JobOutcome, PendingJob
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import Store, canonical_json
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

# (artifact sha256, device class, settings JSON, spelling): two spellings that export to one
# artifact share a job when the class's agents time artifacts; a replay agent answers by the
# spelling, so there (and while no agent is online to say which) the spelling is part of the key.
JobKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class Subject:
    """What a measurement is of: the store keeps it, and the predictor learns it, under these."""

    space: str
    canonical: str
    as_spelled: str
    num_classes: int
    input_resolution: int

    @classmethod
    def of(cls, arch: ParsedArch) -> Subject:
        return cls(arch.space, arch.canonical, arch.as_spelled, arch.num_classes,
                   arch.input_resolution)

    def to_json(self) -> str:
        return canonical_json(self)


@dataclass(frozen=True)
class JobSpec:
    """One latency job as it is submitted: the key it is shared under, the job message, its
    record (what it takes to submit it again after a restart) and what it measures."""

    key: JobKey
    device_class: str
    job: agent_pb2.Job
    record: str
    subject: Subject
    priority: int = 0


@dataclass
class Ticket:
    """A request's place on one job (`handle`: the board's own)."""

    spec: JobSpec
    job_id: str
    handle: Any


# Called once per finished job (not per waiter) with what the agent answered.
OnResult = Callable[[JobSpec, JobOutcome], None]


class JobBoard(Protocol):
    """Where a server's latency jobs go: `LocalJobs` (one process) or `SharedJobs` (replicas
    on one PostgreSQL store)."""

    on_result: OnResult

    def start(self) -> None: ...

    def spelling_matters(self, device_class: str) -> bool: ...

    async def submit(self, spec: JobSpec, waiting: bool = True) -> Ticket: ...

    async def wait(self, ticket: Ticket, deadline: float) -> JobOutcome: ...

    async def resume(self, rebuild: Callable[[Any], Any]) -> int: ...

    async def close(self) -> None: ...


class LocalJobs:
    def __init__(self, fleet: Fleet, store: Optional[Store] = None,
                 on_result: OnResult = lambda spec, outcome: None,
                 on_job_done: Callable[[str, JobOutcome, float], None] = lambda c, o, s: None
                 ) -> None:
        self.fleet, self.store = fleet, store
        self.on_result, self._on_job_done = on_result, on_job_done
        self._lock = threading.Lock()
        self._shared: dict[JobKey, tuple[PendingJob, int]] = {}
        if store is not None:
            fleet.on_dispatch = lambda pending, agent_id: store.start_job(
                pending.job.job_id, agent_id)
            fleet.on_requeue = lambda pending, reason: store.requeue_job(
                pending.job.job_id, reason)

    def start(self) -> None:
        """Nothing to start: the fleet dispatches."""

    def spelling_matters(self, device_class: str) -> bool:
        return not self.fleet.times_artifacts(device_class)

    async def submit(self, spec: JobSpec, waiting: bool = True) -> Ticket:
        """Join the identical job in flight, or submit this one (recorded first: an idle agent
        may take it at once, and the store marks it running then). `waiting=False`: no request
        waits (a resumed job)."""
        with self._lock:
            shared = self._shared.get(spec.key)
            if shared is not None and not shared[0].future.done():
                self._shared[spec.key] = (shared[0], shared[1] + int(waiting))
                joined = shared[0]
            else:
                joined = None
        if joined is not None:
            self.fleet.raise_priority(joined, spec.priority)  # outside our lock, as submit
            return Ticket(spec, joined.job.job_id, joined)
        self._record(spec)
        submitted = time.monotonic()
        pending = self.fleet.submit(spec.device_class, spec.job, spec.priority)
        with self._lock:
            self._shared[spec.key] = (pending, int(waiting))
        pending.future.add_done_callback(lambda f: self._done(spec, f, submitted))
        return Ticket(spec, pending.job.job_id, pending)

    def _record(self, spec: JobSpec) -> None:
        if self.store is None:
            return
        try:
            self.store.add_job(spec.job.job_id, spec.device_class, spec.record)
        except Exception:  # noqa: BLE001 - the job runs anyway; only its resumption is lost
            log.warning("could not record job %s", spec.job.job_id, exc_info=True)

    async def wait(self, ticket: Ticket, deadline: float) -> JobOutcome:
        """The job's outcome, or TIMEOUT when `deadline` (monotonic) passes first. A waiter that
        leaves (timeout or cancellation) cancels the job if it was the last one."""
        future = asyncio.wrap_future(ticket.handle.future)
        try:
            return await asyncio.wait_for(asyncio.shield(future),
                                          max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return self._leave(ticket)
        except asyncio.CancelledError:
            self._leave(ticket)
            raise

    def _leave(self, ticket: Ticket) -> JobOutcome:
        pending: PendingJob = ticket.handle
        with self._lock:
            shared = self._shared.get(ticket.spec.key)
            others = shared is not None and shared[0] is pending and shared[1] > 1
            if others:
                self._shared[ticket.spec.key] = (pending, shared[1] - 1)
        if not others:
            self.fleet.cancel(pending, "no request waits for it any more")
        done = pending.future.result() if pending.future.done() else None
        if done is not None and done.ok:
            return done  # it finished in the same instant
        return JobOutcome(pending.job.job_id, failure_kind=common_pb2.TIMEOUT)

    def _done(self, spec: JobSpec, future: Future, submitted: float) -> None:
        """Once per job (not per waiter): forget it as shared, keep its record and result."""
        with self._lock:
            shared = self._shared.get(spec.key)
            if shared is not None and shared[0].future is future:
                del self._shared[spec.key]
        outcome: JobOutcome = future.result()
        self._on_job_done(spec.device_class, outcome, time.monotonic() - submitted)
        if outcome.shutdown:
            return  # not finished: its record stays queued for the next server process
        if self.store is not None:
            try:
                self.store.finish_job(outcome.job_id, outcome.ok, outcome.detail)
            except Exception:  # noqa: BLE001
                log.warning("could not finish job record %s", outcome.job_id, exc_info=True)
        if outcome.ok:
            self.on_result(spec, outcome)

    async def resume(self, rebuild: Callable[[Any], Any]) -> int:
        """At start: submit again every job a previous server process left queued or running,
        under its old id (`rebuild(record)`: its JobSpec), so its measurement lands in the
        store. Returns how many were resubmitted."""
        if self.store is None:
            return 0
        store = self.store

        def unfinished() -> list:
            store.requeue_inflight()  # running -> queued: every unfinished job is queued now
            return store.jobs(state="queued")

        resumed = 0
        for record in await asyncio.to_thread(unfinished):
            try:
                await self.submit(await rebuild(record), waiting=False)
                resumed += 1
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the start
                log.warning("could not resume job %s: %s", record.job_id, exc)
                await asyncio.to_thread(store.finish_job, record.job_id, False,
                                        f"not resumed: {exc}")
        return resumed

    async def close(self) -> None:
        """Nothing beyond the fleet's own close."""
