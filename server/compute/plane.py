"""The compute plane: proxy computations and exports, off the gRPC front, bounded and fair.

Requests queue units in a `FairQueue` (bounded: RESOURCE_EXHAUSTED past it; round-robin across
clients and their streams); a dispatcher hands the next unit to a free backend slot (a local
worker process or a Ray task). A requester that goes away (cancelled, deadline passed) drops its
queued unit, or has its running unit abandoned; a unit past `max_seconds` is stopped and answered
DEADLINE_EXCEEDED. Everything here runs on the server's event loop; `run_blocking` serves code
that runs on other threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from edgescore.server.compute.fairness import Entry, FairQueue, QueueFull
from edgescore.server.compute.units import ProxyUnit, Unit
from edgescore.server.errors import DeadlineExceeded, ServerError, Unavailable

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    size: int  # units that run at once (known after start)

    async def start(self) -> None: ...

    async def run(self, slot: int, unit: Unit, on_item: Callable[[Any], None]) -> Any:
        """Run `unit` in `slot`; cancelling the call abandons the unit (the slot is usable
        again once the call has returned)."""

    def device_of(self, slot: int) -> str: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Caller:
    """Who a unit of work is for: the client (a connection), its lane (its unary calls share
    "unary"; a ScoreStream is a lane of its own), and whether a full queue makes it wait for
    room (a stream, which then stops reading) or fails it (RESOURCE_EXHAUSTED)."""

    client: str
    lane: str = "unary"
    wait_for_room: bool = False


@dataclass(eq=False)
class _Ticket:
    unit: Unit
    future: asyncio.Future
    on_item: Callable[[Any], None]
    task: Optional[asyncio.Task] = None
    queued_at: float = field(default_factory=time.monotonic)


def _ignore(item: Any) -> None:
    pass


class ComputePlane:
    def __init__(self, backend: Backend, *, capacity: int = 1024, per_client: int = 256,
                 max_seconds: float = 300.0,
                 on_unit: Callable[[str, str, float], None] = lambda kind, outcome, s: None
                 ) -> None:
        self.backend = backend
        self.max_seconds = max_seconds
        self._queue: FairQueue[_Ticket] = FairQueue(capacity, per_client)
        self._on_unit = on_unit
        self._free: list[int] = []
        self._room = asyncio.Event()  # set when a queued unit leaves the queue
        self._running: set[asyncio.Task] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._starting: Optional[asyncio.Task] = None
        self._failed: Optional[str] = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the backend in the background: the front serves at once, units wait for it."""
        self._loop = asyncio.get_running_loop()
        self._starting = asyncio.create_task(self._start_backend())

    async def _start_backend(self) -> None:
        started = time.monotonic()
        try:
            await self.backend.start()
        except Exception as exc:  # noqa: BLE001 - the server stays up and says why
            self._failed = f"the {self.backend.name} compute backend did not start: {exc}"
            log.error("%s", self._failed, exc_info=True)
            while (entry := self._queue.pop()) is not None:
                self._fail(entry.item, Unavailable(self._failed))
            return
        self._free = list(range(self.backend.size))[::-1]
        log.info("compute plane: %s backend with %d slot(s) ready in %.1f s", self.backend.name,
                 self.backend.size, time.monotonic() - started)
        self._dispatch()

    async def wait_ready(self) -> None:
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        while (entry := self._queue.pop()) is not None:
            self._fail(entry.item, Unavailable("the server is shutting down"))
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        await self.backend.close()

    def snapshot(self) -> dict[str, int]:
        size = self.backend.size if self._starting and self._starting.done() else 0
        return {"queued": len(self._queue), "running": len(self._running), "slots": size}

    # -- requests -------------------------------------------------------------------------------

    async def run(self, unit: Unit, caller: Caller, on_item: Callable[[Any], None] = _ignore
                  ) -> Any:
        """Queue `unit` and wait for its result. QueueFull when the queue is at its bounds (or
        wait for room: `caller.wait_for_room`); cancelling the call drops or abandons the unit;
        a unit's own failure (a ServerError) is raised here; DeadlineExceeded past the cap."""
        if self._failed:
            raise Unavailable(self._failed)
        if self._closed:
            raise Unavailable("the server is shutting down")
        ticket = _Ticket(unit, asyncio.get_running_loop().create_future(), on_item)
        while True:
            try:
                entry: Entry[_Ticket] = self._queue.push(ticket, caller.client, caller.lane)
                break
            except QueueFull:
                if not caller.wait_for_room:
                    raise
                self._room.clear()
                await self._room.wait()
        self._dispatch()
        try:
            return await ticket.future
        except asyncio.CancelledError:
            if self._queue.cancel(entry):
                self._room.set()
            elif ticket.task is not None:
                ticket.task.cancel()  # running: abandon it
            raise

    def run_blocking(self, unit: Unit, caller: Caller,
                     on_item: Callable[[Any], None] = _ignore) -> Any:
        """`run` for code on another thread (reference populations): blocks that thread."""
        if self._loop is None:
            raise Unavailable("the compute plane is not started")
        return asyncio.run_coroutine_threadsafe(self.run(unit, caller, on_item),
                                                self._loop).result()

    # -- dispatch -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._free and not self._closed:
            entry = self._queue.pop()
            if entry is None:
                return
            self._room.set()
            ticket, slot = entry.item, self._free.pop()
            ticket.task = asyncio.create_task(self._execute(slot, ticket))
            self._running.add(ticket.task)

    def _bind(self, slot: int, unit: Unit) -> Unit:
        if isinstance(unit, ProxyUnit):  # each worker computes on its own device (cuda:i)
            return dataclasses.replace(unit, device=self.backend.device_of(slot))
        return unit

    async def _execute(self, slot: int, ticket: _Ticket) -> None:
        started, outcome = time.monotonic(), "ok"
        try:
            result = await asyncio.wait_for(
                self.backend.run(slot, self._bind(slot, ticket.unit), ticket.on_item),
                self.max_seconds)
        except asyncio.TimeoutError:
            outcome = "timeout"
            self._fail(ticket, DeadlineExceeded(
                f"the computation ran past the server's cap of {self.max_seconds:g} s "
                "(--max-compute-seconds) and was stopped"))
        except asyncio.CancelledError:
            outcome = "cancelled"
            if not ticket.future.done():
                ticket.future.cancel()
        except ServerError as exc:
            outcome = "error"
            self._fail(ticket, exc)
        except Exception as exc:  # noqa: BLE001 - a backend bug fails this unit only
            outcome = "error"
            log.error("compute unit failed in the %s backend", self.backend.name, exc_info=True)
            self._fail(ticket, ServerError(f"computation failed ({type(exc).__name__})"))
        else:
            if not ticket.future.done():
                ticket.future.set_result(result)
        finally:
            self._running.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._free.append(slot)
            self._on_unit(ticket.unit.kind, outcome, time.monotonic() - started)
            self._dispatch()

    @staticmethod
    def _fail(ticket: _Ticket, error: BaseException) -> None:
        if not ticket.future.done():
            ticket.future.set_exception(error)
