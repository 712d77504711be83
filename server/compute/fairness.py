"""The compute plane's queue: bounded, and round-robin across clients, then across each client's
lanes (its unary calls share one lane; each ScoreStream is a lane of its own).

A client that queues 20,000 items waits behind itself: a client (or lane) with nothing queued that
queues an item goes to the front of the rotation, so its item is the next one served, and every
active client's next item comes after at most one item of each other active client. Cancelled
entries are skipped when they come up (and stop counting against the bounds at once), so
cancelling is O(1).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Generic, Optional, TypeVar

from edgescore.server.errors import ResourceExhausted

T = TypeVar("T")


@dataclass(eq=False)
class Entry(Generic[T]):
    item: T
    client: str
    lane: str
    cancelled: bool = False
    queued: bool = True


@dataclass
class _Client:
    lanes: OrderedDict[str, deque[Entry]] = field(default_factory=OrderedDict)
    count: int = 0  # live (not cancelled) entries


class QueueFull(ResourceExhausted):
    """The plane is saturated: the request may be sent again later (retry pushback)."""


class FairQueue(Generic[T]):
    def __init__(self, capacity: int = 1024, per_client: int = 256) -> None:
        if capacity < 1 or per_client < 1:
            raise ValueError("queue capacity and per-client share must be at least 1")
        self.capacity, self.per_client = capacity, per_client
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, item: T, client: str, lane: str = "") -> Entry[T]:
        """Queue `item`; QueueFull (RESOURCE_EXHAUSTED) past either bound."""
        if self._count >= self.capacity:
            raise QueueFull(f"the compute queue holds {self._count} units, its capacity "
                            f"(--max-queued {self.capacity}); retry later")
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client()
            self._clients.move_to_end(client, last=False)  # new: served next
        if state.count >= self.per_client:
            raise QueueFull(f"this client has {state.count} units queued, the most one client "
                            f"may hold (--max-queued-per-client {self.per_client}); retry later")
        entry = Entry(item, client, lane)
        if lane not in state.lanes:
            state.lanes[lane] = deque()
            state.lanes.move_to_end(lane, last=False)
        state.lanes[lane].append(entry)
        state.count += 1
        self._count += 1
        return entry

    def cancel(self, entry: Entry[Any]) -> bool:
        """Drop a queued entry; False when it was already taken (or cancelled)."""
        if entry.cancelled or not entry.queued:
            return False
        entry.cancelled = True
        state = self._clients[entry.client]
        state.count -= 1
        self._count -= 1
        if state.count == 0:
            del self._clients[entry.client]  # only cancelled entries were left: free them now
        return True

    def pop(self) -> Optional[Entry[T]]:
        """The next entry: the first client in turn, its first lane in turn; both then go to
        the back of their rotation."""
        while self._clients:
            client, state = next(iter(self._clients.items()))
            entry = self._pop_lane(state)
            if entry is None:
                del self._clients[client]
                continue
            if state.lanes:
                self._clients.move_to_end(client)
            else:
                del self._clients[client]
            return entry
        return None

    def _pop_lane(self, state: _Client) -> Optional[Entry[T]]:
        while state.lanes:
            lane, entries = next(iter(state.lanes.items()))
            while entries:
                entry = entries.popleft()
                if entry.cancelled:
                    continue
                entry.queued = False
                state.count -= 1
                self._count -= 1
                if entries:
                    state.lanes.move_to_end(lane)
                else:
                    del state.lanes[lane]
                return entry
            del state.lanes[lane]
        return None
