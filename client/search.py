"""Reference searches through the server: random search and regularized (aging) evolution.

Both evaluate candidates with `Client.score_many` (bounded in flight; evolution draws each new
child from the population as it stands when a slot frees up, the asynchronous form of Real et
al. 2019). The fitness is the objective: `constraint` (feasible first, then the proxy: the
default with a latency budget), `mnas` (the server's MnasNet reward) or `proxy` (the proxy alone).
Every evaluated candidate is kept (`SearchResult.records`) for the CSV and the Pareto plot.
Optuna's samplers (NSGA-II, TPE, random) run the same configuration through
edgescore.integrations.optuna, which adds the two-valued `pareto` objective (proxy up, latency
down) and turns its trials into the same records.
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

ALGORITHMS = ("random", "evolution")  # run_search's own
# Run by edgescore.integrations.optuna with Optuna's samplers (`edgescore search` runs `random`
# there too); nsga2 and tpe optimise proxy and latency together by default.
OPTUNA_ALGORITHMS = ("nsga2", "tpe", "random")
MULTI_OBJECTIVE_ALGORITHMS = ("nsga2", "tpe")
OBJECTIVES = ("constraint", "mnas", "proxy", "pareto")


@dataclass
class SearchConfig:
    space: str = "nb201"
    algo: str = "evolution"
    budget: int = 100                   # candidates evaluated
    proxy: str = "synflow"
    device: str = ""                    # device class for latency; "" = proxies only
    latency_ms: float = 0.0             # budget on `device` (constraint) or target (mnas)
    objective: str = ""                 # "" = constraint with a device, else proxy
    population: int = 20                # evolution: P, the population kept (aging); NSGA-II's
    sample_size: int = 5                # evolution: S, the tournament size
    seed: int = 0                       # the search's own randomness
    proxy_seed: int = 0                 # seed of the proxy computations
    max_in_flight: int = 4
    measurement: Mapping[str, Any] = field(default_factory=dict)
    allow_predicted: bool = False

    def resolved_objective(self) -> str:
        if self.objective:
            return self.objective
        if self.device and self.latency_ms:
            return "constraint"
        return "pareto" if self.device and self.algo in MULTI_OBJECTIVE_ALGORITHMS else "proxy"

    def check(self, algorithms: Sequence[str] = ALGORITHMS) -> None:
        """ValueError naming what is wrong; `algorithms`: those the caller runs."""
        if self.algo not in algorithms:
            raise ValueError(f"unknown algorithm '{self.algo}'; known: {', '.join(algorithms)}")
        objective = self.resolved_objective()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")
        if objective in ("constraint", "mnas") and not (self.device and self.latency_ms > 0):
            raise ValueError(f"objective {objective} needs --device and --latency-ms > 0")
        if objective == "pareto" and not self.device:
            raise ValueError("objective pareto (proxy up, latency down) needs --device")
        if objective == "pareto" and self.algo == "evolution":
            raise ValueError("evolution needs one fitness: objective constraint, mnas or proxy")
        if self.budget < 1 or self.population < 1:
            raise ValueError("need budget >= 1 and population >= 1")
        if self.algo == "evolution" and not 1 <= self.sample_size <= self.population:
            raise ValueError("evolution needs 1 <= sample size <= population")


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


def objective_pb(config: SearchConfig) -> Optional[common_pb2.Objective]:
    """The v1 Objective the server computes for the search's objective (pareto with a latency
    budget asks for the constraint, so that the server says which candidates are feasible)."""
    objective = config.resolved_objective()
    if objective == "constraint" or (objective == "pareto" and config.latency_ms > 0):
        return common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
            proxy=config.proxy, latency_budget_ms={config.device: config.latency_ms}))
    if objective == "mnas":
        return common_pb2.Objective(mnas=common_pb2.MnasObjective(
            proxy=config.proxy, device_class=config.device, target_latency_ms=config.latency_ms))
    return None


def record_of(step: int, item: BatchItem, config: SearchConfig) -> Record:
    """The record of one scored candidate: its values, feasibility and fitness, or its error."""
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
    if kind == "proxy" or (kind == "pareto" and r.objective is None):
        record.feasible = True  # no budget to break: a scored candidate is feasible
    elif r.objective is None or r.objective.value is None:
        record.error = f"objective: {r.objective.message if r.objective else 'missing'}"
        return record
    else:
        record.objective, record.feasible = r.objective.value, r.objective.feasible
    record.fitness = fitness(record, kind)
    return record


def fitness(record: Record, kind: str) -> tuple:
    """How a scored record ranks under objective `kind` (higher is better): feasible first,
    then the proxy, where there is a budget; the server's reward for mnas."""
    if kind == "mnas":
        return (record.objective,)
    return (record.feasible, record.proxy) if kind in ("constraint", "pareto") else (record.proxy,)


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
        measurement=dict(config.measurement), objective=objective_pb(config),
        allow_predicted=config.allow_predicted)
    for item in items:
        record = record_of(len(records), item, config)
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
