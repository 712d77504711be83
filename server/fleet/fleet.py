"""Agents online per device class, a FIFO job queue per class, and the futures that wait on jobs.

The fleet knows nothing of gRPC streams: an agent session is an outbox (a queue the agent servicer
drains onto the stream) plus what the fleet needs to schedule. One job at a time per agent; a job
whose agent is lost goes back to the head of its class queue until its retry cap is reached.

A job goes only to an agent with a runtime for its artifact format (`RuntimeInfo.formats`): the
queue is FIFO among the jobs some idle agent can run, so an ONNX job is not held up behind a
TFLite job waiting for the class's one LiteRT agent. A job that no online agent of its class can
run fails at submission with UNSUPPORTED_FORMAT. Likewise a job that names an onnxruntime
execution provider or a TFLite delegate (MeasurementSettings.execution_provider / delegate) goes
only to an agent that lists it (RuntimeInfo.execution_providers / delegates), and fails at
submission with UNSUPPORTED_ACCELERATOR, naming what is missing, when no online agent of the class
does; while no agent of the class is online, or after
the only capable agent was lost (it may reconnect), jobs wait for the latency timeout as before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from edgescore.server.fleet.sessions import (
    AgentSession,
    JobOutcome,
    JobQueue,
    PendingJob,
    answers_by_architecture,
    describe_accelerator,
    job_accelerator,
    job_format,
)
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)


class Fleet:
    def __init__(
        self,
        heartbeat_interval: float = 5.0,
        missed_heartbeats: int = 3,
        max_attempts: int = 3,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        # Told (under the fleet lock: keep them short, never call back into the fleet) when a job
        # goes to an agent and when a lost agent's job goes back to the queue; the store keeps
        # job states with these.
        self.on_dispatch: Callable[[PendingJob, str], None] = lambda pending, agent_id: None
        self.on_requeue: Callable[[PendingJob, str], None] = lambda pending, reason: None
        # Told (under the lock, likewise) when an agent of a class may have become idle: a
        # shared queue then claims a job for it.
        self.on_idle: Callable[[str], None] = lambda device_class: None
        self.missed_heartbeats = missed_heartbeats
        self.max_attempts = max_attempts
        self._lock = threading.RLock()
        self._agents: dict[str, AgentSession] = {}
        self._queues: dict[str, JobQueue] = {}
        self._known_classes: set[str] = set()
        self._done: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="fleet-reaper", daemon=True)
        self._reaper.start()

    # -- agents -----------------------------------------------------------------------------

    def register(self, capabilities: agent_pb2.Capabilities, agent_id: str = "",
                 loop: asyncio.AbstractEventLoop | None = None) -> AgentSession:
        """A new session; `loop`: the event loop its stream handler awaits the outbox on."""
        device_class = capabilities.device_class
        with self._lock:
            old = self._agents.get(agent_id) if agent_id else None
            if old is not None:
                # A reconnect that raced its old stream's teardown: the old session is gone.
                self._drop(old, reason="replaced by a new connection")
            agent_id = agent_id or f"{device_class}-{uuid.uuid4().hex[:8]}"
            session = AgentSession(agent_id, device_class, capabilities)
            if loop is not None:
                session.outbox.bind(loop)
            self._agents[agent_id] = session
            self._known_classes.add(device_class)
            self._queues.setdefault(device_class, JobQueue())
            log.info("agent %s registered (class %s, host %s)", agent_id, device_class,
                     capabilities.hostname)
            self._dispatch(device_class)
            return session

    def heartbeat(self, session: AgentSession) -> None:
        session.last_seen = time.monotonic()

    def unregister(self, session: AgentSession, reason: str = "disconnected") -> None:
        with self._lock:
            if self._agents.get(session.agent_id) is session:
                self._drop(session, reason)

    def _drop(self, session: AgentSession, reason: str) -> None:
        session.closed = True
        del self._agents[session.agent_id]
        session.outbox.put(None)
        log.info("agent %s lost: %s", session.agent_id, reason)
        pending, session.running = session.running, None
        if pending is not None and not pending.future.done():
            cap = self.max_attempts if pending.max_attempts is None else pending.max_attempts
            if pending.attempts >= cap and not self._stop.is_set():
                pending.future.set_result(JobOutcome(
                    pending.job.job_id, session.agent_id,
                    failure_kind=common_pb2.AGENT_LOST,
                    detail=f"agent lost {pending.attempts} times; last: {reason}"))
            else:
                self._queues[pending.device_class].appendleft(pending)
                self._notify(self.on_requeue, pending, reason)
                # No _fail_unrunnable here: the lost agent may be back in a moment.
                self._dispatch(pending.device_class)

    # -- jobs -------------------------------------------------------------------------------

    def is_known(self, device_class: str) -> bool:
        with self._lock:
            return device_class in self._known_classes

    def submit(self, device_class: str, job: agent_pb2.Job, priority: int = 0,
               max_attempts: int | None = None) -> PendingJob:
        if not job.job_id:
            job.job_id = self.new_job_id()
        pending = PendingJob(job, device_class, priority=priority, max_attempts=max_attempts)
        with self._lock:
            self._queues.setdefault(device_class, JobQueue()).add(pending)
            self._fail_unrunnable(device_class)
            self._dispatch(device_class)
        return pending

    def new_job_id(self) -> str:
        return f"job-{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    def raise_priority(self, pending: PendingJob, priority: int) -> None:
        """A request of a higher priority joined this job (`JobQueue.raise_priority`; a job
        already running stays as it is)."""
        with self._lock:
            q = self._queues.get(pending.device_class)
            if q is not None:
                q.raise_priority(pending, priority)

    def cancel(self, pending: PendingJob, reason: str = "cancelled") -> None:
        """Forget a job nobody waits for any more: out of its queue, or stopped on the board
        that runs it (CancelJob; the agent stays busy until it answers, and that answer is
        dropped)."""
        with self._lock:
            q = self._queues.get(pending.device_class)
            if q is not None and pending in q:
                q.remove(pending)
            for session in self._agents.values():
                if session.running is pending:
                    session.outbox.put(agent_pb2.ServerMessage(
                        cancel=agent_pb2.CancelJob(job_id=pending.job.job_id)))
                    log.info("job %s cancelled on agent %s: %s", pending.job.job_id,
                             session.agent_id, reason)
        if not pending.future.done():
            pending.future.set_result(JobOutcome(
                pending.job.job_id, failure_kind=common_pb2.TIMEOUT, detail=reason))

    def complete(self, session: AgentSession, message: agent_pb2.AgentMessage) -> None:
        kind = message.WhichOneof("msg")
        job_id = getattr(message, kind).job_id
        with self._lock:
            pending = session.running
            if pending is None or pending.job.job_id != job_id:
                # Idempotent by job_id: a late or duplicate answer is dropped.
                log.warning("agent %s answered unknown job %s; dropped", session.agent_id, job_id)
                return
            session.running = None
            if pending.future.done():  # cancelled while it ran: the agent is free again
                self._dispatch(session.device_class)
                return
            if kind == "result":
                self._done[session.device_class] += 1
                outcome = JobOutcome(job_id, session.agent_id, result=message.result,
                                     by_architecture=answers_by_architecture(
                                         session, message.result.runtime))
            else:
                outcome = JobOutcome(job_id, session.agent_id, failure_kind=message.failure.kind,
                                     detail=message.failure.detail)
            if not pending.future.done():
                pending.future.set_result(outcome)
            self._dispatch(session.device_class)

    def _fail_unrunnable(self, device_class: str) -> None:
        """Fail queued jobs whose format no online agent of the class has a runtime for."""
        online = [a for a in self._agents.values()
                  if a.device_class == device_class and not a.closed]
        q = self._queues.get(device_class)
        if not online or not q:
            return  # no agent yet (or a reconnect under way): the job waits, as before
        formats = frozenset().union(*(a.formats for a in online))
        for pending in q.take_unrunnable(lambda job: any(a.can_run(job) for a in online)):
            if pending.future.done():
                continue
            fmt = job_format(pending.job)
            need = job_accelerator(pending.job)
            if fmt in formats and need is not None:
                have = sorted({name for a in online for kind, name in a.accelerators(fmt)
                               if kind == need[0]})
                what = "execution providers" if need[0] == "provider" else "delegates"
                pending.future.set_result(JobOutcome(
                    pending.job.job_id, failure_kind=common_pb2.UNSUPPORTED_ACCELERATOR,
                    detail=(f"no agent of device class '{device_class}' has "
                            f"{describe_accelerator(need)} for format '{fmt}' (its agents' "
                            f"{what}: {', '.join(have) or 'none listed'})")))
                continue
            pending.future.set_result(JobOutcome(
                pending.job.job_id, failure_kind=common_pb2.UNSUPPORTED_FORMAT,
                detail=(f"no agent of device class '{device_class}' can run format "
                        f"'{fmt}' (its agents run: {', '.join(sorted(formats))})")))

    def idle_capacity(self) -> dict[str, tuple[int, frozenset[str]]]:
        """Per class: how many of its agents have nothing to do, and the formats they run."""
        with self._lock:
            found: dict[str, tuple[int, frozenset[str]]] = {}
            for a in self._agents.values():
                if a.running is None and not a.closed:
                    n, formats = found.get(a.device_class, (0, frozenset()))
                    found[a.device_class] = (n + 1, formats | a.formats)
            for cls, q in self._queues.items():
                if cls in found and q:
                    n, formats = found[cls]
                    found[cls] = (n - len(q), formats)
            return {cls: v for cls, v in found.items() if v[0] > 0}

    def _dispatch(self, device_class: str) -> None:
        self._idle_maybe(device_class)
        q = self._queues.get(device_class)
        if not q:
            return
        idle = sorted((a for a in self._agents.values()
                       if a.device_class == device_class and a.running is None and not a.closed),
                      key=lambda a: a.connected_at)
        for pending in list(q):
            if not idle:
                return
            if pending.future.done():
                q.remove(pending)
                continue
            agent = next((a for a in idle if a.can_run(pending.job)), None)
            if agent is None:
                continue  # its agents are busy: later jobs of other formats may still go
            q.remove(pending)
            idle.remove(agent)
            pending.attempts += 1
            agent.running = pending
            agent.outbox.put(agent_pb2.ServerMessage(job=pending.job))
            self._notify(self.on_dispatch, pending, agent.agent_id)

    def _idle_maybe(self, device_class: str) -> None:
        try:
            self.on_idle(device_class)
        except Exception:  # noqa: BLE001 - bookkeeping must not stop the scheduler
            log.warning("fleet idle listener failed", exc_info=True)

    @staticmethod
    def _notify(listener: Callable[[PendingJob, str], None], pending: PendingJob,
                detail: str) -> None:
        try:
            listener(pending, detail)
        except Exception:  # noqa: BLE001 - bookkeeping must not stop the scheduler
            log.warning("fleet listener failed for job %s", pending.job.job_id, exc_info=True)

    # -- liveness ---------------------------------------------------------------------------

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            deadline = time.monotonic() - self.heartbeat_interval * self.missed_heartbeats
            with self._lock:
                for session in [a for a in self._agents.values() if a.last_seen < deadline]:
                    self._drop(session, f"missed {self.missed_heartbeats} heartbeats")

    def close(self) -> None:
        """Drop every agent and end every job's wait with a `shutdown` outcome: a request
        handler blocked on a job returns at once instead of holding the process up until its
        latency timeout."""
        self._stop.set()
        with self._lock:
            for session in list(self._agents.values()):
                self._drop(session, "server shutting down")
            stranded = [p for q in self._queues.values() for p in q]
            for q in self._queues.values():
                q.clear()
        for pending in stranded:  # outside the lock: done-callbacks run here
            if not pending.future.done():
                pending.future.set_result(JobOutcome(
                    pending.job.job_id, failure_kind=common_pb2.AGENT_LOST,
                    detail="the server is shutting down; the job resumes after its restart",
                    shutdown=True))

    # -- views ------------------------------------------------------------------------------

    def times_artifacts(self, device_class: str) -> bool:
        """True when the class has agents online and all of them time artifacts (no replay
        runtime): then equal artifacts get equal measurements, whatever spec they came from."""
        with self._lock:
            agents = [a for a in self._agents.values() if a.device_class == device_class]
            return bool(agents) and not any(rt.answers_by_architecture for a in agents
                                            for rt in a.capabilities.runtimes)

    def agents_online(self, device_class: str) -> int:
        with self._lock:
            return sum(1 for a in self._agents.values() if a.device_class == device_class)

    def snapshot(self) -> list[dict]:
        """Per device class: agents, busy count, queue depth, measurements done."""
        with self._lock:
            now = time.monotonic()
            out = []
            for device_class in sorted(self._known_classes):
                agents = [a for a in self._agents.values() if a.device_class == device_class]
                out.append({
                    "device_class": device_class,
                    "agents": [(a, now - a.connected_at) for a in agents],
                    "busy": sum(1 for a in agents if a.running is not None),
                    "queue_depth": len(self._queues.get(device_class, ())),
                    "done": self._done[device_class],
                })
            return out
