"""What the fleet schedules with: an agent's session (its outbox and what it runs), a pending job,
a device class's queue of them, and what a job ends with."""

from __future__ import annotations

import asyncio
import queue
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from edgescore.v1 import agent_pb2, common_pb2


@dataclass
class JobOutcome:
    """What a job's future resolves to: a result, or a failure kind with its detail."""

    job_id: str
    agent_id: str = ""
    result: agent_pb2.JobResult | None = None
    failure_kind: int = common_pb2.FAILURE_KIND_UNSPECIFIED
    detail: str = ""
    # The result came from a runtime that looks the architecture up (replay) instead of timing
    # the artifact: it holds for the architecture as spelled, not for the artifact.
    by_architecture: bool = False
    # The server is shutting down: the job is neither done nor failed (its record stays queued,
    # and the next server process resubmits it).
    shutdown: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class PendingJob:
    job: agent_pb2.Job
    device_class: str
    future: Future = field(default_factory=Future)
    attempts: int = 0
    priority: int = 0  # higher is dispatched first; FIFO among equals
    max_attempts: int | None = None  # None: the fleet's; a shared queue counts attempts itself


_FORMAT_NAMES = {common_pb2.ONNX: "onnx", common_pb2.TFLITE: "tflite"}


def answers_by_architecture(session: AgentSession, runtime: str) -> bool:
    return any(rt.answers_by_architecture for rt in session.capabilities.runtimes
               if rt.name == runtime)


def job_format(job: agent_pb2.Job) -> str:
    """The artifact format name agents list in RuntimeInfo.formats ("onnx", "tflite")."""
    fmt = job.artifact.format or job.settings.format or common_pb2.ONNX
    return _FORMAT_NAMES.get(fmt, common_pb2.ArtifactFormat.Name(fmt).lower())


class JobQueue(deque):
    """A device class's jobs waiting for an agent: a higher priority first, FIFO among equals
    (the fleet puts a lost agent's job back at the head)."""

    def add(self, pending: PendingJob) -> None:
        """Behind every job of the same or a higher priority."""
        at = next((i for i, other in enumerate(self) if other.priority < pending.priority),
                  len(self))
        self.insert(at, pending)

    def raise_priority(self, pending: PendingJob, priority: int) -> None:
        """A request of a higher priority joined this queued job: it moves up to that priority
        (behind the jobs already there). A job not queued here, or of a higher priority, stays."""
        if priority <= pending.priority or pending not in self:
            return
        self.remove(pending)
        pending.priority = priority
        self.add(pending)

    def take_unrunnable(self, formats: frozenset[str]) -> list[PendingJob]:
        """Take out the jobs whose artifact format is not among `formats`."""
        found = [p for p in self if job_format(p.job) not in formats]
        for pending in found:
            self.remove(pending)
        return found


class Outbox(queue.Queue):
    """A session's messages to its agent: put from any thread (the fleet's lock holders, its
    reaper), taken by the agent's stream handler on the event loop without holding a thread."""

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._ready = loop, asyncio.Event()

    def _put(self, item: object) -> None:
        super()._put(item)
        if self._loop is not None and self._ready is not None:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:
                pass  # the loop is closed: the server is stopping

    async def next(self) -> object:
        """The next message, waiting for one without blocking the loop (after `bind`)."""
        assert self._ready is not None
        while True:
            try:
                return self.get_nowait()
            except queue.Empty:
                self._ready.clear()
            if self.empty():
                await self._ready.wait()


@dataclass
class AgentSession:
    agent_id: str
    device_class: str
    capabilities: agent_pb2.Capabilities
    outbox: Outbox = field(default_factory=Outbox)
    connected_at: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    running: PendingJob | None = None
    closed: bool = False

    @property
    def formats(self) -> frozenset[str]:
        found = frozenset(f.lower() for rt in self.capabilities.runtimes for f in rt.formats)
        # An agent that lists no formats predates them: it ran ONNX, the only format then.
        return found or frozenset({"onnx"})
