"""What the fleet schedules with: an agent's session (its outbox and what it runs), a pending job,
a device class's queue of them, and what a job ends with."""

from __future__ import annotations

import asyncio
import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from edgescore.accelerators import (
    canonical_delegate,
    is_default_delegate,
    provider_full_name,
)
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


def job_accelerator(job: agent_pb2.Job) -> tuple[str, str] | None:
    """What the job needs besides its format: ("provider", onnxruntime's name) for an ONNX job
    that names an execution provider, ("delegate", name) for a TFLite job that names a delegate
    other than the built-in XNNPACK; None for the runtime's default. The server validated the
    names (measurement.resolve_measurement): a bad one here means the default."""
    fmt = job_format(job)
    try:
        if fmt == "onnx" and job.settings.execution_provider:
            return ("provider", provider_full_name(job.settings.execution_provider))
        if fmt == "tflite" and not is_default_delegate(job.settings.delegate):
            return ("delegate", canonical_delegate(job.settings.delegate))
    except ValueError:
        return None
    return None


def describe_accelerator(need: tuple[str, str]) -> str:
    kind, name = need
    return f"execution provider '{name}'" if kind == "provider" else f"TFLite delegate '{name}'"


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

    def take_unrunnable(self, runnable: Callable[[agent_pb2.Job], bool]) -> list[PendingJob]:
        """Take out the jobs `runnable` says no online agent can run."""
        found = [p for p in self if not runnable(p.job)]
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

    def accelerators(self, fmt: str) -> frozenset[tuple[str, str]]:
        """("provider", name) and ("delegate", name) pairs its runtimes of format `fmt` list."""
        found: set[tuple[str, str]] = set()
        for rt in self.capabilities.runtimes:
            listed = {f.lower() for f in rt.formats} or {"onnx"}  # none listed: ONNX, as above
            if fmt not in listed:
                continue
            found.update(("provider", p) for p in rt.execution_providers)
            found.update(("delegate", d.lower()) for d in rt.delegates)
        return frozenset(found)

    def can_run(self, job: agent_pb2.Job) -> bool:
        """It has a runtime for the job's format, with the provider / delegate the job names."""
        fmt = job_format(job)
        if fmt not in self.formats:
            return False
        need = job_accelerator(job)
        return need is None or need in self.accelerators(fmt)
