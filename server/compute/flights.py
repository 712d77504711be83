"""Computations in flight, each shared by every request that needs it.

Two requests for the same proxy value or artifact wait on one computation. A flight counts its
waiters; when the last one leaves (cancelled, deadline passed) the computation is cancelled, so
abandoned work is dropped from the compute queue or stopped in its worker. A flight may be known
under several keys (one unit of work computes several proxies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable, Iterable
from typing import Any, Optional


class Flight:
    def __init__(self, task: asyncio.Task, keys: tuple[Hashable, ...]) -> None:
        self.task, self.keys = task, keys
        self.waiters = 0


class Flights:
    def __init__(self) -> None:
        self._by_key: dict[Hashable, Flight] = {}

    def find(self, key: Hashable) -> Optional[Flight]:
        return self._by_key.get(key)

    def launch(self, keys: Iterable[Hashable], work: Coroutine[Any, Any, Any]) -> Flight:
        """Start `work` as the flight of `keys` (none of them may be in flight)."""
        flight = Flight(asyncio.create_task(work), tuple(keys))
        for key in flight.keys:
            self._by_key[key] = flight
        flight.task.add_done_callback(lambda _task: self._forget(flight))
        return flight

    def _forget(self, flight: Flight) -> None:
        for key in flight.keys:
            if self._by_key.get(key) is flight:
                del self._by_key[key]

    async def wait(self, flight: Flight) -> Any:
        """The flight's result; leaving early (cancellation) cancels it if no one else waits."""
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._forget(flight)  # a new request must not join a computation being stopped
                flight.task.cancel()
            raise

    async def join_or_launch(self, key: Hashable, work: Any) -> Any:
        """Wait on the flight of `key`, starting it with `work()` (a coroutine function) when
        there is none."""
        flight = self.find(key) or self.launch((key,), work())
        return await self.wait(flight)
