"""Latency jobs shared by server replicas on one PostgreSQL store (the `LocalJobs` board's twin).

A request at any replica queues its job in the database (or joins the identical active one); a
replica with an idle agent of the class claims it, hands it to that agent through its own fleet,
keeps the measurement and writes the agent's answer back; every replica whose requests wait on
the job reads that answer when the database says the job is done. Leases make a replica killed
mid-job lose nothing: its running jobs are queued again when it stops renewing them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.jobs import JobSpec, OnResult, Subject, Ticket
from edgescore.server.fleet.sessions import JobOutcome, PendingJob, job_format
from edgescore.server.store.job_queue import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    QUEUED_CHANNEL,
    Claimed,
    Finished,
    SharedQueue,
)
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
POLL_S = 2.0  # notifications wake the replicas; polling catches one that was missed


def _outcome_json(outcome: JobOutcome) -> str:
    return json.dumps({
        "agent_id": outcome.agent_id, "by_architecture": outcome.by_architecture,
        "failure_kind": outcome.failure_kind, "detail": outcome.detail,
        "result": base64.b64encode(outcome.result.SerializeToString()).decode()
        if outcome.result is not None else ""})


def _outcome(found: Finished) -> JobOutcome:
    if not found.outcome:
        return JobOutcome(found.job_id, failure_kind=common_pb2.TIMEOUT, detail=found.error)
    o = json.loads(found.outcome)
    result = (agent_pb2.JobResult.FromString(base64.b64decode(o["result"])) if o["result"]
              else None)
    return JobOutcome(found.job_id, o["agent_id"], result=result,
                      failure_kind=o["failure_kind"], detail=o["detail"],
                      by_architecture=o["by_architecture"])


@dataclass
class _Waiting:
    future: asyncio.Future
    count: int = 0


class SharedJobs:
    def __init__(self, fleet: Fleet, url: str, lease_seconds: float = 15.0,
                 on_result: OnResult = lambda spec, outcome: None,
                 on_job_done: Callable[[str, JobOutcome, float], None] = lambda c, o, s: None
                 ) -> None:
        self.fleet, self.lease = fleet, lease_seconds
        self.on_result, self._on_job_done = on_result, on_job_done
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queue = SharedQueue(url)
        self._waiting: dict[str, _Waiting] = {}
        self._mine: dict[str, tuple[Claimed, PendingJob]] = {}  # claimed here, running here
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.fleet.on_idle = lambda device_class: self._poke()
        threading.Thread(target=self.queue.listen, args=(self._notified, self._stop),
                         name="job-queue-listen", daemon=True).start()
        self._tasks = [asyncio.create_task(self._dispatch_loop()),
                       asyncio.create_task(self._lease_loop())]

    def spelling_matters(self, device_class: str) -> bool:
        # Always: whether a class's agents time artifacts is known only where they are
        # connected, and the key must be the same at every replica. (Spellings of one artifact
        # still share its stored measurement.)
        return True

    # -- a request's side -----------------------------------------------------------------------

    async def submit(self, spec: JobSpec, waiting: bool = True) -> Ticket:
        job = agent_pb2.Job()
        job.CopyFrom(spec.job)
        artifact = job.artifact.data
        job.artifact.data = b""  # kept once, in the artifacts table
        key = hashlib.sha256("\0".join(spec.key).encode()).hexdigest()
        job_id, joined = await asyncio.to_thread(
            self.queue.submit, job_id=job.job_id, job_key=key, device_class=spec.device_class,
            fmt=job_format(job), priority=spec.priority, message=job.SerializeToString(),
            artifact_sha256=job.artifact.sha256, artifact=artifact,
            subject=json.dumps({"subject": json.loads(spec.subject.to_json()),
                                "key": list(spec.key)}),
            record=spec.record, waiting=waiting)
        entry = self._waiting.get(job_id)
        if entry is None:
            entry = self._waiting[job_id] = _Waiting(asyncio.get_running_loop().create_future())
        entry.count += int(waiting)
        return Ticket(spec, job_id, entry)

    async def wait(self, ticket: Ticket, deadline: float) -> JobOutcome:
        entry: _Waiting = ticket.handle
        try:
            return await asyncio.wait_for(asyncio.shield(entry.future),
                                          max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            await self._leave(ticket.job_id, entry)
            return JobOutcome(ticket.job_id, failure_kind=common_pb2.TIMEOUT)
        except asyncio.CancelledError:
            asyncio.get_running_loop().create_task(self._leave(ticket.job_id, entry))
            raise

    async def _leave(self, job_id: str, entry: _Waiting) -> None:
        entry.count -= 1
        if entry.count <= 0 and self._waiting.get(job_id) is entry:
            del self._waiting[job_id]
        left, state, _ = await asyncio.to_thread(self.queue.leave, job_id)
        if left <= 0 and state in ("queued", "running"):
            await asyncio.to_thread(self.queue.cancel, job_id, "no request waits for it")

    def _notified(self, channel: str, payload: str) -> None:
        """From the listening thread."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._on_note, channel, payload)
        except RuntimeError:
            pass  # the loop is closed

    def _on_note(self, channel: str, payload: str) -> None:
        if channel == DONE_CHANNEL and payload in self._waiting:
            asyncio.create_task(self._collect([payload]))
        elif channel == CANCEL_CHANNEL and payload in self._mine:
            asyncio.create_task(self._cancel_mine(payload))
        elif channel in (QUEUED_CHANNEL, ""):
            self._wake.set()

    async def _collect(self, job_ids: list[str]) -> None:
        for found in await asyncio.to_thread(self.queue.finished, job_ids):
            entry = self._waiting.pop(found.job_id, None)
            if entry is not None and not entry.future.done():
                entry.future.set_result(_outcome(found))

    # -- an owner's side ------------------------------------------------------------------------

    def _poke(self) -> None:
        """From any thread (the fleet calls it under its lock): look for work."""
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                if self._waiting:
                    await self._collect(list(self._waiting))
            self._wake.clear()
            try:
                await self._claim_for_idle_agents()
            except Exception:  # noqa: BLE001 - the database may be restarting: try again
                log.warning("could not claim jobs", exc_info=True)

    async def _claim_for_idle_agents(self) -> None:
        for device_class, (idle, formats) in self.fleet.idle_capacity().items():
            for _ in range(idle):
                claimed = await asyncio.to_thread(self.queue.claim, self.replica, device_class,
                                                  sorted(formats), self.lease)
                if claimed is None:
                    break
                self._run(claimed)

    def _run(self, claimed: Claimed) -> None:
        job = agent_pb2.Job.FromString(claimed.message)
        job.artifact.data = claimed.artifact
        submitted = time.monotonic()
        # One attempt here: a lost agent sends the job back to the shared queue, which counts.
        pending = self.fleet.submit(claimed.device_class, job, claimed.priority, max_attempts=1)
        self._mine[claimed.job_id] = (claimed, pending)
        loop = asyncio.get_running_loop()
        pending.future.add_done_callback(lambda f: loop.call_soon_threadsafe(
            lambda: loop.create_task(self._finish(claimed, f.result(), submitted))))

    async def _finish(self, claimed: Claimed, outcome: JobOutcome, submitted: float) -> None:
        self._mine.pop(claimed.job_id, None)
        self._on_job_done(claimed.device_class, outcome, time.monotonic() - submitted)
        if outcome.shutdown:
            return  # close() hands every job of this replica back
        if outcome.failure_kind == common_pb2.AGENT_LOST and claimed.attempts < MAX_ATTEMPTS:
            await asyncio.to_thread(self.queue.requeue, claimed.job_id, outcome.detail)
            return
        if outcome.ok:  # this replica keeps the measurement, as a single server does
            about = json.loads(claimed.subject)
            spec = JobSpec(tuple(about["key"]), claimed.device_class, agent_pb2.Job(), "",
                           Subject(**about["subject"]))
            await asyncio.to_thread(self.on_result, spec, outcome)
        await asyncio.to_thread(self.queue.finish, claimed.job_id,
                                "done" if outcome.ok else "failed", _outcome_json(outcome),
                                outcome.detail, outcome.agent_id)

    async def _cancel_mine(self, job_id: str) -> None:
        found = self._mine.get(job_id)
        if found is not None:
            self.fleet.cancel(found[1], "no request waits for it any more")

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await asyncio.to_thread(self.queue.renew, self.replica, self.lease)
                expired = await asyncio.to_thread(self.queue.expire)
                if expired:
                    log.info("%d job(s) of a stopped replica queued again", expired)
            except Exception:  # noqa: BLE001 - the database may be restarting: try again
                log.warning("could not renew the job leases", exc_info=True)

    async def resume(self, rebuild: Any) -> int:
        """At start: jobs of replicas that stopped go back to the queue (the others' stay)."""
        return await asyncio.to_thread(self.queue.expire)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._stop.set()
        for job_id in list(self._mine):  # another replica takes them at once
            await asyncio.to_thread(self.queue.requeue, job_id, "its server replica stopped")
        await asyncio.to_thread(self.queue.close)
