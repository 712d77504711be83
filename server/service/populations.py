"""Reference populations for rank normalisation: each proxy's values over a seeded random sample
of the space (computed once per proxy and settings, kept in the store with the other proxy
values), and each device class's measured latencies (from the store).

Raw proxy values live on incomparable scales; a percentile in the space's population does not, so
the objective that weighs several proxies and latencies (`weighted_rank`) ranks with these and
reports the percentiles it used. The first request that needs a population pays for computing
it (`size` archs of that proxy); later ones, and restarts, read it back.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Optional

import numpy as np

from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies import engine
from edgescore.server.proxies.base import ResolvedSettings, SettingsOverride
from edgescore.server.scoring.population import ReferencePopulation, Sampler, nb201_sampler
from edgescore.server.scoring.ranks import percentile
from edgescore.server.service.proxy_cache import ProxyCache
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import Store

SAMPLERS: dict[str, Sampler] = {"nb201": nb201_sampler}


class Populations:
    def __init__(self, store: Optional[Store], cache: ProxyCache, device: str = "cpu",
                 size: int = 100, seed: int = 0) -> None:
        self.store, self.cache, self.device = store, cache, device
        self.size, self.seed = size, seed
        self._proxies: dict[tuple, ReferencePopulation] = {}
        self._lock = threading.Lock()

    def proxy_percentile(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings,
                         value: float) -> float:
        """`value`'s percentile among `proxy` (same settings, class count, resolution) over the
        space's reference sample."""
        sampler = SAMPLERS.get(arch.space)
        if sampler is None:
            raise FailedPrecondition(f"no reference population for space '{arch.space}' yet")
        key = (arch.space, proxy, repr(dataclasses.astuple(settings)), arch.num_classes,
               arch.input_resolution)
        with self._lock:
            population = self._proxies.get(key)
            if population is None:
                population = self._proxies[key] = self._population(arch, proxy, settings, sampler)
        return population.percentile(value)

    def _population(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings,
                    sampler: Sampler) -> ReferencePopulation:
        space = spaces.get_space(arch.space)
        override = SettingsOverride(**{f.name: getattr(settings, f.name)
                                       for f in dataclasses.fields(SettingsOverride)})

        def member(spec: str) -> ParsedArch:
            return space.parse(spec, arch.num_classes, arch.input_resolution)

        def compute(spec: str) -> float:
            (outcome,) = engine.compute_proxies(space, member(spec), [(proxy, override)],
                                                device=self.device)
            if outcome.error is not None:
                raise outcome.error
            return float(outcome.value)

        return ReferencePopulation(
            compute, sampler, size=self.size, seed=self.seed, store=self.store,
            key_for=(lambda spec: self.cache.key(member(spec), proxy, settings))
            if self.store is not None else None)

    def latency_percentile(self, device_class: str, space: str, latency_ms: float) -> float:
        """How fast `latency_ms` is among the class's stored measurements of the space: the
        percentile of its negation (faster is higher), in (0, 100)."""
        if self.store is None:
            raise FailedPrecondition("latency percentiles need the results store")
        measured = [r.median_ms for r in self.store.measurements_for_device(device_class, space)
                    if r.median_ms is not None and math.isfinite(r.median_ms)]
        if not measured:
            raise FailedPrecondition(f"no stored measurements of device class '{device_class}' "
                                     f"to rank a latency against")
        return percentile(-latency_ms, -np.asarray(measured))
