"""The job board of one server process: jobs go to the in-memory `Fleet`, identical requests
share a job, every job is recorded in the store (so a restart resumes it), and a job no request
waits for any more is cancelled, on its agent too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Optional

from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.jobs import JobKey, JobSpec, OnResult, Ticket
from edgescore.server.fleet.sessions import JobOutcome, PendingJob
from edgescore.server.store import Store
from edgescore.v1 import common_pb2

log = logging.getLogger(__name__)


class _InFlight:
    """The jobs in flight by key, each with how many requests wait on it. Its own lock: the
    fleet finishes jobs on other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[JobKey, tuple[PendingJob, int]] = {}

    def join(self, key: JobKey, waiting: bool) -> Optional[PendingJob]:
        """The identical job still in flight, with one more waiter; None when there is none."""
        with self._lock:
            shared = self._jobs.get(key)
            if shared is None or shared[0].future.done():
                return None
            self._jobs[key] = (shared[0], shared[1] + int(waiting))
            return shared[0]

    def add(self, key: JobKey, pending: PendingJob, waiting: bool) -> None:
        with self._lock:
            self._jobs[key] = (pending, int(waiting))

    def leave(self, key: JobKey, pending: PendingJob) -> bool:
        """One waiter fewer; True when it was the last one."""
        with self._lock:
            shared = self._jobs.get(key)
            others = shared is not None and shared[0] is pending and shared[1] > 1
            if others:
                self._jobs[key] = (pending, shared[1] - 1)
            return not others

    def forget(self, key: JobKey, future: Future) -> None:
        with self._lock:
            shared = self._jobs.get(key)
            if shared is not None and shared[0].future is future:
                del self._jobs[key]


class LocalJobs:
    def __init__(self, fleet: Fleet, store: Optional[Store] = None,
                 on_result: OnResult = lambda spec, outcome: None,
                 on_job_done: Callable[[str, JobOutcome, float], None] = lambda c, o, s: None
                 ) -> None:
        self.fleet, self.store = fleet, store
        self.on_result, self._on_job_done = on_result, on_job_done
        self._in_flight = _InFlight()
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
        joined = self._in_flight.join(spec.key, waiting)
        if joined is not None:
            # After `join` has let its lock go: the fleet's lock is never taken under it.
            self.fleet.raise_priority(joined, spec.priority)
            return Ticket(spec, joined.job.job_id, joined)
        self._record(spec)
        submitted = time.monotonic()
        pending = self.fleet.submit(spec.device_class, spec.job, spec.priority)
        self._in_flight.add(spec.key, pending, waiting)
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
        if self._in_flight.leave(ticket.spec.key, pending):
            self.fleet.cancel(pending, "no request waits for it any more")
        done = pending.future.result() if pending.future.done() else None
        if done is not None and done.ok:
            return done  # it finished in the same instant
        return JobOutcome(pending.job.job_id, failure_kind=common_pb2.TIMEOUT)

    def _done(self, spec: JobSpec, future: Future, submitted: float) -> None:
        """Once per job (not per waiter): forget it as shared, keep its record and result."""
        self._in_flight.forget(spec.key, future)
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
