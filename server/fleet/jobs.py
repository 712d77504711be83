"""A latency job board: where a server's jobs go, and what a job is as it is submitted.

Identical requests share a job, and a job no request waits for any more is cancelled. The boards:
`local_jobs.LocalJobs` (one server process, the in-memory `Fleet`) and `shared_jobs.SharedJobs`
(several server replicas on one PostgreSQL store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgescore.server.fleet.sessions import JobOutcome
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import canonical_json
from edgescore.v1 import agent_pb2

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
    """Where a server's latency jobs go (see the module's docstring for the two boards)."""

    on_result: OnResult

    def start(self) -> None: ...

    def spelling_matters(self, device_class: str) -> bool: ...

    async def submit(self, spec: JobSpec, waiting: bool = True) -> Ticket: ...

    async def wait(self, ticket: Ticket, deadline: float) -> JobOutcome: ...

    async def resume(self, rebuild: Callable[[Any], Any]) -> int: ...

    async def close(self) -> None: ...
