"""Percentiles against reference populations: each proxy's values over a seeded random sample
of the space (computed once per proxy and settings, kept in the store with the other proxy
values), and each device class's measured latencies (from the store).

Raw proxy values live on incomparable scales; a percentile in the space's population does not, so
the objectives that need a scale-free value (`mnas`, `weighted_rank`) and the composite proxies
rank with these, and report the percentiles they used. The first request that needs a
population pays for computing it (`size` archs of that proxy); later ones, and restarts, read it
back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from edgescore.server.compute import units
from edgescore.server.compute.units import ArchRef, ProxyUnit
from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies.base import ResolvedSettings, SettingsOverride
from edgescore.server.proxies.engine import ProxyOutcome
from edgescore.server.proxies.registry import get_composite
from edgescore.server.scoring import composite
from edgescore.server.scoring.composite import CompositeSettings
from edgescore.server.scoring.population import (
    ReferencePopulation,
    Sampler,
    first_distinct,
    nb201_sampler,
)
from edgescore.server.scoring.proxy_cache import ProxyCache
from edgescore.server.scoring.ranks import percentile
from edgescore.server.scoring.workload import Settings, workload
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch, SearchSpace
from edgescore.server.store import Store

SAMPLERS: dict[str, Sampler] = {"nb201": nb201_sampler}
# Runs one unit, handing each outcome to the callback: the server's compute plane, or in process.
RunUnit = Callable[[ProxyUnit, Callable[[ProxyOutcome], None]], None]


def run_in_process(unit: ProxyUnit, emit: Callable[[ProxyOutcome], None]) -> None:
    units.execute(unit, emit, lambda: None)


def space_sampler(space: SearchSpace) -> Optional[Sampler]:
    """A population sampler for a space: nb201's own enumeration, else its grammar's `sample`
    (seeded; specs as text: strings as they are, dict specs as JSON), distinct archs only."""
    if space.name in SAMPLERS:
        return SAMPLERS[space.name]
    if space.grammar is None:
        return None
    sample = space.grammar.sample

    def sampler(n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        # 20 draws per arch: small spaces may hold fewer than n distinct archs.
        drawn = (_spec_text(sample(rng)) for _ in range(n * 20))
        return first_distinct(drawn, lambda text: text, n)

    return sampler


def _spec_text(spec: object) -> str:
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)


def _spec_value(text: str) -> object:
    return json.loads(text) if text.startswith("{") else text


class Populations:
    """`run` computes a member's value (the compute plane's `run_blocking` in the server, so
    callers are threads); `parallel` members are computed at once."""

    def __init__(self, store: Optional[Store], cache: ProxyCache, device: str = "cpu",
                 size: int = 100, seed: int = 0, run: RunUnit = run_in_process,
                 parallel: int = 1) -> None:
        self.store, self.cache, self.device = store, cache, device
        self.size, self.seed = size, seed
        self._run, self.parallel = run, parallel
        self._proxies: dict[tuple, ReferencePopulation] = {}
        self._latencies: dict[tuple[str, str], _Latencies] = {}
        self._lock = threading.RLock()  # a composite's population builds its members'

    def proxy_percentile(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings,
                         value: float) -> float:
        """`value`'s percentile among `proxy` (same settings, class count, resolution) over the
        space's reference sample."""
        sampler = space_sampler(spaces.get_space(arch.space))
        if sampler is None:
            raise FailedPrecondition(f"no reference population for space '{arch.space}' yet")
        return self._population(arch, proxy, settings, sampler).percentile(value)

    def member_values(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings,
                      specs: list[str]) -> list[float]:
        """`proxy`'s values (NaN where it failed) for other archs of `arch`'s space at its class
        count and resolution, computed and stored as reference population members are."""
        sampler = space_sampler(spaces.get_space(arch.space))
        if sampler is None:
            raise FailedPrecondition(f"space '{arch.space}' has no reference populations")
        population = self._population(arch, proxy, settings, sampler)
        with ThreadPoolExecutor(self.parallel, "members") as pool:
            return list(pool.map(population.value_of, specs))

    def _population(self, arch: ParsedArch, proxy: str,
                    settings: ResolvedSettings | CompositeSettings,
                    sampler: Sampler) -> ReferencePopulation:
        key = (arch.space, proxy, repr(dataclasses.astuple(settings)), arch.num_classes,
               arch.input_resolution)
        with self._lock:
            population = self._proxies.get(key)
            if population is None:
                if isinstance(settings, CompositeSettings) and get_composite(proxy).fitted:
                    raise FailedPrecondition(f"{proxy} is fitted to a label set; it has no "
                                             "percentile in a reference population")
                make = (self._composite_population if isinstance(settings, CompositeSettings)
                        else self._proxy_population)
                population = self._proxies[key] = make(arch, proxy, settings, sampler)
        return population

    def _composite_population(self, arch: ParsedArch, proxy: str, settings: CompositeSettings,
                              sampler: Sampler) -> ReferencePopulation:
        """The composite over the same sample, from its members' populations (their values
        come from the store or from the members' own first computation)."""
        members = {name: self._population(arch, name, resolved, sampler)
                   for name, _, resolved in settings.members}

        def compute(spec: str) -> float:
            found = {name: m.value_of(spec) for name, m in members.items()}
            if any(math.isnan(v) for v in found.values()):
                return math.nan  # left out of the population, as a failed member value is
            return composite.combine(settings, found,
                                     lambda name, _, value: members[name].percentile(value))[0]

        return ReferencePopulation(compute, sampler, size=self.size, seed=self.seed)

    def _proxy_population(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings,
                          sampler: Sampler) -> ReferencePopulation:
        space = spaces.get_space(arch.space)
        override = SettingsOverride(**{f.name: getattr(settings, f.name)
                                       for f in dataclasses.fields(SettingsOverride)})

        def member(spec: str) -> ParsedArch:
            return space.parse(_spec_value(spec), arch.num_classes, arch.input_resolution)

        def compute(spec: str) -> float:
            got: list[ProxyOutcome] = []
            ref = ArchRef(arch.space, _spec_value(spec), arch.num_classes, arch.input_resolution)
            self._run(ProxyUnit(ref, ((proxy, override),), self.device), got.append)
            (outcome,) = got
            if outcome.error is not None:
                raise outcome.error
            return float(outcome.value)

        return ReferencePopulation(
            compute, sampler, size=self.size, seed=self.seed, parallel=self.parallel,
            store=self.store,
            key_for=(lambda spec: self.cache.key(member(spec), proxy, settings))
            if self.store is not None else None)

    def latency_percentile(self, device_class: str, arch: ParsedArch, latency_ms: float,
                           settings: Settings = None, metric: str = "latency") -> float:
        """How fast `latency_ms` is among the class's stored measurements of networks of the
        space at `arch`'s class count and resolution, taken under the same workload (`settings`:
        format, precision, batch size, threads; see workload.py): the percentile of its negation
        (faster is higher), in (0, 100). metric "energy": `latency_ms` is an energy per
        inference (mJ), ranked among the class's stored energies (less is higher)."""
        if self.store is None:
            raise FailedPrecondition("latency percentiles need the results store")
        group = (arch.num_classes, arch.input_resolution, workload(settings))
        with self._lock:
            known = self._latencies.setdefault(
                (device_class, arch.space), _Latencies(spaces.default_shape(arch.space)))
            # Only the rows stored since the last look are read: a class holds thousands.
            known.add(self.store.measurements_for_device(device_class, arch.space,
                                                         since=known.since))
            table = known.energies if metric == "energy" else known.medians
            measured = np.asarray(table.get(group, []))
        if not measured.size:
            what = "energy measurements" if metric == "energy" else "measurements"
            raise FailedPrecondition(
                f"no stored {what} of device class '{device_class}' at "
                f"{arch.input_resolution}x{arch.input_resolution} with {arch.num_classes} classes"
                f" under these measurement settings to rank a latency against")
        return percentile(-latency_ms, -measured)


class _Latencies:
    """One class's stored medians of one space by network shape and workload, kept up to date
    incrementally (rows stored without a shape were taken at the space's default)."""

    def __init__(self, default: tuple[int, int]) -> None:
        self.medians: dict[tuple[int, int, str], list[float]] = {}
        self.energies: dict[tuple[int, int, str], list[float]] = {}  # mJ per inference
        self.since: Optional[float] = None
        self._seen: set = set()
        self._default = default

    def add(self, records: list) -> None:
        for r in records:
            if r.key in self._seen:
                continue
            self._seen.add(r.key)
            self.since = r.created_at if self.since is None else max(self.since, r.created_at)
            if r.median_ms is not None and math.isfinite(r.median_ms):
                classes, resolution = r.stats.get("arch_shape") or self._default
                group = (classes, resolution, workload(r.key.settings))
                self.medians.setdefault(group, []).append(r.median_ms)
                energy = _stored_energy(r.stats)
                if energy is not None:
                    self.energies.setdefault(group, []).append(energy)


def _stored_energy(stats: dict) -> Optional[float]:
    """The energy per inference (mJ) of a stored measurement, when its board had a sensor."""
    found = ((stats.get("job_result") or {}).get("energy") or {})
    value = found.get("energy_per_inference_mj") if found.get("measured") else None
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None
