"""A request's proxy values: stored ones are served (CACHED), the others computed on the compute
plane; one (arch, proxy, settings) is computed once however many requests want it at a time.
A composite's members are computed with the other proxies (once, where a member is also
requested with the same settings), and the composite from them.

The proxies a request still needs are one unit of work (they share the network build and the
passes). A request that needs a value already in flight waits on that flight instead; when every
request waiting on a unit has gone, the unit is dropped or stopped. Values are stored as they
arrive, so work done before a cap or a cancellation stays served.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, Optional, Union

from edgescore.server.compute.fairness import QueueFull
from edgescore.server.compute.flights import Flight, Flights
from edgescore.server.compute.plane import Caller, ComputePlane
from edgescore.server.compute.units import ArchRef, ProxyUnit
from edgescore.server.errors import ServerError, Unavailable
from edgescore.server.metrics import Metrics
from edgescore.server.proxies.engine import ProxyOutcome
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.scoring import composite
from edgescore.server.scoring.composite import CompositeOutcome, CompositeSettings
from edgescore.server.scoring.label_sets import LabelSets
from edgescore.server.scoring.percentiles import Populations
from edgescore.server.scoring.proxy_cache import ProxyCache, Served
from edgescore.server.spaces.base import ParsedArch

log = logging.getLogger(__name__)

Call = tuple  # (name, override, resolved settings or CompositeSettings)


def _call_key(name: str, settings: object) -> tuple[str, str]:
    return name, repr(settings)


def _failed(name: str, settings: Any, error: ServerError) -> ProxyOutcome:
    """What a proxy the unit never reached reports: the unit's error, under its own name."""
    own = copy.copy(error)  # keeps the class (status code) and fields
    own.message = f"{name}: {error.message}"
    own.args = (own.message,)
    proxy = get_proxy(name)
    return ProxyOutcome(name=name, value=None, unit=proxy.unit, transform=proxy.transform,
                        settings=settings, seconds=0.0, error=own)


class ProxyValues:
    def __init__(self, plane: ComputePlane, cache: ProxyCache, metrics: Metrics,
                 device: str = "cpu", populations: Optional[Populations] = None,
                 label_sets: Optional[LabelSets] = None) -> None:
        self._plane, self._cache, self._metrics, self._device = plane, cache, metrics, device
        self._populations = populations
        self._label_sets = label_sets
        self._flights = Flights()

    async def results(self, arch: ParsedArch, ref: ArchRef, calls: list[Call],
                      registered: tuple, use_store: bool, caller: Caller
                      ) -> list[Union[Served, CompositeOutcome]]:
        """One answer per call, in order."""
        needed: dict[tuple, Call] = {}
        for name, override, settings in calls:
            members = (settings.members if isinstance(settings, CompositeSettings)
                       else [(name, override, settings)])
            for member in members:
                needed.setdefault(_call_key(member[0], member[2]), member)
        done = dict(zip(needed, await self._values(arch, ref, list(needed.values()), registered,
                                                   use_store, caller)))
        out = []
        for name, _, settings in calls:
            if isinstance(settings, CompositeSettings):
                members = [done[_call_key(n, resolved)] for n, _, resolved in settings.members]
                out.append(await asyncio.to_thread(self._composite, arch, settings, members))
            else:
                out.append(done[_call_key(name, settings)])
        return out

    def _composite(self, arch: ParsedArch, settings: CompositeSettings,
                   members: list[Served]) -> CompositeOutcome:
        """Off the event loop: a population's first use computes it, as does a fitted
        composite's first use its model."""
        populations, label_sets = self._populations, self._label_sets
        predict = None if label_sets is None else (
            lambda values: label_sets.predict(arch, settings, values))
        if populations is None:
            return composite.outcome(settings, members, None, predict)
        return composite.outcome(settings, members, lambda name, resolved, value:
                                 populations.proxy_percentile(arch, name, resolved, value),
                                 predict)

    async def _values(self, arch: ParsedArch, ref: ArchRef, calls: list[Call],
                      registered: tuple, use_store: bool, caller: Caller) -> list[Served]:
        keys = [self._cache.key(arch, name, settings).digest for name, _, settings in calls]
        cached = await asyncio.to_thread(self._lookup, arch, calls) if use_store else {}
        waits: dict[int, Flight] = {}
        own = []
        for i, key in enumerate(keys):
            if i in cached:
                continue
            flight = self._flights.find(key)
            if flight is None:
                own.append(i)
            else:
                waits[i] = flight
        if own:
            unit = ProxyUnit(ref, tuple((calls[i][0], calls[i][1]) for i in own), self._device,
                             registered)
            flight = self._flights.launch(
                [keys[i] for i in own],
                self._run(arch, unit, [(keys[i], calls[i][2]) for i in own], caller))
            waits.update((i, flight) for i in own)
        distinct = {id(f): f for f in waits.values()}
        outcomes: dict[str, ProxyOutcome] = {}
        for found in await asyncio.gather(*(self._flights.wait(f) for f in distinct.values())):
            outcomes.update(found)
        return [Served(cached[i], True) if i in cached else Served(outcomes[keys[i]], False)
                for i in range(len(calls))]

    def _lookup(self, arch: ParsedArch, calls: list[Call]) -> dict[int, ProxyOutcome]:
        found = {}
        for i, (name, _, settings) in enumerate(calls):
            hit = self._cache.lookup(arch, name, settings)
            self._metrics.cache.labels("proxy", "miss" if hit is None else "hit").inc()
            if hit is not None:
                found[i] = hit
        return found

    async def _run(self, arch: ParsedArch, unit: ProxyUnit, keyed: list[tuple[str, Any]],
                   caller: Caller) -> dict[str, ProxyOutcome]:
        """The unit's outcomes by proxy key; proxies it never reached carry its error."""
        got: dict[str, ProxyOutcome] = {}

        def arrived(outcome: ProxyOutcome) -> None:
            got[keyed[len(got)][0]] = outcome
            status = "ok" if outcome.error is None else "error"
            self._metrics.proxy_seconds.labels(outcome.name, arch.space, status).observe(
                outcome.seconds)

        try:
            await self._plane.run(unit, caller, arrived)
        except asyncio.CancelledError:
            # Nobody waits any more; what was computed is still worth keeping.
            asyncio.get_running_loop().run_in_executor(None, self._save, arch, list(got.values()))
            raise
        except (QueueFull, Unavailable):
            raise  # the request's own status: the client retries it whole
        except ServerError as exc:  # the time or memory cap, a dead worker: per proxy
            for (name, _), (key, settings) in zip(unit.calls, keyed):
                got.setdefault(key, _failed(name, settings, exc))
        # Stored before anyone is answered, so the next identical request finds them.
        await asyncio.to_thread(self._save, arch, list(got.values()))
        return got

    def _save(self, arch: ParsedArch, outcomes: list[ProxyOutcome]) -> None:
        for outcome in outcomes:
            self._cache.save(arch, outcome)
