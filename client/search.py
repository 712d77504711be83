"""Reference searches through the server: random search and regularized (aging) evolution.

Both evaluate candidates with `Client.score_many` (bounded in flight; evolution draws each new
child from the population as it stands when a slot frees up, the asynchronous form of Real et
al. 2019). The fitness is the objective: `constraint` (feasible first, then the proxy: the
default with a latency budget), `mnas` (the server's MnasNet reward) or `proxy` (the proxy alone).
Every evaluated candidate is kept (`SearchResult.records`) for the CSV and the Pareto plot.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from edgescore.client.api import Client
from edgescore.client.results import BatchItem
from edgescore.client.search_spaces import Sampler
from edgescore.v1 import common_pb2

ALGORITHMS = ("random", "evolution")
OBJECTIVES = ("constraint", "mnas", "proxy")


@dataclass
class SearchConfig:
    space: str = "nb201"
    algo: str = "evolution"
    budget: int = 100                   # candidates evaluated
    proxy: str = "synflow"
    device: str = ""                    # device class for latency; "" = proxies only
    latency_ms: float = 0.0             # budget on `device` (constraint) or target (mnas)
    objective: str = ""                 # "" = constraint with a device, else proxy
    population: int = 20                # evolution: P, the population kept (aging)
    sample_size: int = 5                # evolution: S, the tournament size
    seed: int = 0                       # the search's own randomness
    proxy_seed: int = 0                 # seed of the proxy computations
    max_in_flight: int = 4
    measurement: Mapping[str, Any] = field(default_factory=dict)
    allow_predicted: bool = False

    def resolved_objective(self) -> str:
        return self.objective or ("constraint" if self.device and self.latency_ms else "proxy")

    def check(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algorithm '{self.algo}'; known: {', '.join(ALGORITHMS)}")
        objective = self.resolved_objective()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")
        if objective in ("constraint", "mnas") and not (self.device and self.latency_ms > 0):
            raise ValueError(f"objective {objective} needs --device and --latency-ms > 0")
        if self.budget < 1 or self.population < 1 or not 1 <= self.sample_size <= self.population:
            raise ValueError("need budget >= 1, population >= 1, 1 <= sample size <= population")


@dataclass
class Record:
    """One evaluated candidate."""

    step: int
    arch: Any                       # the spec as sent
    canonical: str = ""
    proxy: float = math.nan
    latency_ms: float = math.nan
    latency_source: str = ""
    feasible: bool = False          # True only once scored and within the budget (if any)
    objective: float = math.nan
    fitness: tuple = (-math.inf,)
    error: str = ""

    def spec_text(self) -> str:
        return self.arch if isinstance(self.arch, str) else json.dumps(self.arch, sort_keys=True)


@dataclass
class SearchResult:
    config: SearchConfig
    records: list[Record]

    @property
    def best(self) -> Optional[Record]:
        scored = [r for r in self.records if not r.error and math.isfinite(r.fitness[-1])]
        return max(scored, key=lambda r: r.fitness, default=None)


def _objective_pb(config: SearchConfig) -> Optional[common_pb2.Objective]:
    objective = config.resolved_objective()
    if objective == "constraint":
        return common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
            proxy=config.proxy, latency_budget_ms={config.device: config.latency_ms}))
    if objective == "mnas":
        return common_pb2.Objective(mnas=common_pb2.MnasObjective(
            proxy=config.proxy, device_class=config.device, target_latency_ms=config.latency_ms))
    return None


def _record(step: int, item: BatchItem, config: SearchConfig) -> Record:
    record = Record(step, item.arch)
    if item.error is not None:
        record.error = f"{item.error.code.name}: {item.error.details}"
        return record
    r = item.result
    assert r is not None
    record.canonical = r.canonical_arch
    p = r.proxies.get(config.proxy)
    if p is None or not p.ok:
        record.error = f"proxy {config.proxy}: {p.message if p else 'missing'}"
        return record
    record.proxy = p.value
    if config.device:
        lat = r.latencies.get(config.device)
        if lat is None or not lat.ok:
            record.error = f"latency {config.device}: {lat.message if lat else 'missing'}"
            return record
        record.latency_ms, record.latency_source = lat.median_ms, lat.provenance
    kind = config.resolved_objective()
    if kind == "proxy":
        # No budget to break: a scored candidate is feasible.
        record.feasible, record.fitness = True, (record.proxy,)
    elif r.objective is None or r.objective.value is None:
        record.error = f"objective: {r.objective.message if r.objective else 'missing'}"
    else:
        record.objective, record.feasible = r.objective.value, r.objective.feasible
        record.fitness = ((record.feasible, record.proxy) if kind == "constraint"
                          else (record.objective,))
    return record


class _Candidates:
    """The archs to evaluate, drawn lazily: random samples, or (evolution) children of the
    population as it is when the next one is needed. Known archs are redrawn a few times so the
    budget goes to new ones."""

    def __init__(self, config: SearchConfig, sampler: Sampler) -> None:
        self.config, self.sampler = config, sampler
        self.rng = random.Random(config.seed)
        self.population: deque[Record] = deque()
        self.seen: set[str] = set()

    def _fresh(self, draw: Callable[[], Any]) -> Any:
        for _ in range(50):
            arch = draw()
            key = arch if isinstance(arch, str) else json.dumps(arch, sort_keys=True)
            if key not in self.seen:
                break
        self.seen.add(key)
        return arch

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.config.budget):
            if self.config.algo == "random" or len(self.population) < self.config.population:
                yield self._fresh(lambda: self.sampler.sample(self.rng))
            else:
                contenders = self.rng.sample(list(self.population), self.config.sample_size)
                parent = max(contenders, key=lambda r: r.fitness).arch
                yield self._fresh(lambda p=parent: self.sampler.mutate(p, self.rng))

    def add(self, record: Record) -> None:
        """Evolution keeps the newest P evaluated candidates (the oldest dies: aging)."""
        self.population.append(record)
        if len(self.population) > self.config.population:
            self.population.popleft()


def run_search(client: Client, config: SearchConfig, sampler: Sampler,
               on_record: Callable[[Record], None] = lambda record: None) -> SearchResult:
    config.check()
    candidates = _Candidates(config, sampler)
    records: list[Record] = []
    items = client.score_many(
        iter(candidates), [config.proxy], [config.device] if config.device else [],
        max_in_flight=config.max_in_flight, space=config.space, seed=config.proxy_seed,
        measurement=dict(config.measurement), objective=_objective_pb(config),
        allow_predicted=config.allow_predicted)
    for item in items:
        record = _record(len(records), item, config)
        records.append(record)
        candidates.add(record)
        on_record(record)
    return SearchResult(config, records)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (latency down, score up) points, by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
