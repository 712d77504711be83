"""The Optuna objective: a trial's spec scored through the SDK, its values returned, the
edgescore result attached to the trial.

Values: `pareto` returns (proxy, latency ms) for directions (maximize, minimize); `proxy` and
`constraint` return the proxy, `mnas` the server's MnasNet reward. A latency budget
(`constraint`, or `pareto` with one) becomes an Optuna constraint (`latency_over_budget_ms`,
feasible when <= 0), which NSGA-II, TPE and `study.best_trials` honour.

A candidate that could not be scored (the call failed, or its proxy, latency or objective did)
raises `CandidateFailed`, so Optuna records the trial as FAIL: a failure is never a value the
samplers learn from. Run the study with `catch=CandidateFailed` (`optimize` does).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Union

from edgescore.client.api import Client
from edgescore.client.errors import EdgescoreError
from edgescore.client.results import BatchItem, ScoreResult
from edgescore.client.search import Record, SearchConfig, fitness, objective_pb, record_of
from edgescore.grammar import SpecError
from edgescore.integrations.optuna.spaces import spec_from_trial

if TYPE_CHECKING:
    import optuna

Values = Union[float, tuple[float, ...]]
CONSTRAINT = "latency_over_budget_ms"


class CandidateFailed(Exception):
    """The trial's candidate has no values: not scored, or rejected before scoring."""


def spec_key(spec: Any) -> str:
    """The spec as text (dict specs as sorted JSON): the key of duplicates and of `within`."""
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)


def _attrs(record: Record, result: Optional[ScoreResult], config: SearchConfig) -> dict:
    """What the trial keeps of the edgescore result (JSON only: any storage holds it)."""
    attrs: dict[str, Any] = {"evaluated": True, "feasible": record.feasible}
    if record.error:
        attrs["error"] = record.error
    if result is None:
        return attrs
    attrs["canonical_arch"] = result.canonical_arch
    p = result.proxies.get(config.proxy)
    if p is not None and p.ok:
        attrs["proxy"] = {"name": config.proxy, "value": p.value, "provenance": p.provenance}
    lat = result.latencies.get(config.device) if config.device else None
    if lat is not None and lat.ok:
        attrs["latency"] = {"device": config.device, "provenance": lat.provenance,
                            "median_ms": lat.median_ms, "mean_ms": lat.mean_ms,
                            "p90_ms": lat.p90_ms, "std_ms": lat.std_ms, "n": lat.n,
                            "runtime": lat.runtime, "execution_provider": lat.execution_provider}
    if math.isfinite(record.objective):
        attrs["objective"] = record.objective
    return attrs


def record_from_attrs(step: int, attrs: Mapping[str, Any], config: SearchConfig) -> Record:
    """The search record of an evaluated trial, read back from its user attrs (a resumed study's
    earlier trials come from the storage this way)."""
    proxy, latency = attrs.get("proxy") or {}, attrs.get("latency") or {}
    record = Record(step, attrs["arch"], canonical=attrs.get("canonical_arch", ""),
                    proxy=proxy.get("value", math.nan),
                    latency_ms=latency.get("median_ms", math.nan),
                    latency_source=latency.get("provenance", ""),
                    feasible=bool(attrs.get("feasible")),
                    objective=attrs.get("objective", math.nan), error=attrs.get("error", ""))
    if not record.error:
        record.fitness = fitness(record, config.resolved_objective())
    return record


class Objective:
    """`study.optimize(Objective(client, config), catch=CandidateFailed)`.

    `config` says the space, proxy, device, objective, budget, seeds and measurement settings
    (edgescore.client.search.SearchConfig). `within`: spec texts (see `spec_key`) the search may
    evaluate, e.g. a benchmark split; other specs are rejected before any call. A spec met
    before is not scored again: the trial gets the first one's values (or fails like it), so
    samplers that propose a known arch again cost no evaluation. `limit`: evaluations this
    objective may make at most (None: no limit); past it trials are rejected and the study asked
    to stop. Every trial with a spec has user attr `arch`; rejected and repeated ones have
    `evaluated` False (and `rejected`, or `duplicate_of` the first trial of the arch); the
    others carry the result (`canonical_arch`, `proxy` and `latency` with their provenance,
    the latency stats, `feasible`, `objective`, `error`).
    """

    def __init__(self, client: Client, config: SearchConfig,
                 within: Optional[Collection[str]] = None, limit: Optional[int] = None) -> None:
        self.client, self.config, self.within, self.limit = client, config, within, limit
        self.kind = config.resolved_objective()
        self.directions = ["maximize", "minimize"] if self.kind == "pareto" else ["maximize"]
        self.evaluations = 0
        self._objective = objective_pb(config)
        self._known: dict[str, tuple[int, Optional[Values], Optional[float]]] = {}
        self._lock = threading.Lock()

    def remember(self, trials: Iterable[optuna.trial.FrozenTrial]) -> None:
        """Take the evaluated trials of an existing study (a resumed search) as known."""
        for t in trials:
            if t.user_attrs.get("evaluated"):
                values = None if t.values is None else tuple(t.values)
                value = values if values is None or len(values) > 1 else values[0]
                self._known.setdefault(spec_key(t.user_attrs["arch"]),
                                       (t.number, value, t.constraints.get(CONSTRAINT)))

    def __call__(self, trial: optuna.Trial) -> Values:
        try:
            spec = spec_from_trial(trial, self.config.space)
        except SpecError as exc:
            self._reject(trial, f"not a valid spec: {exc}")
        trial.set_user_attr("arch", spec)  # every trial with a spec, repeats included
        key = spec_key(spec)
        if self.within is not None and key not in self.within:
            self._reject(trial, "outside the allowed archs (within, e.g. a benchmark split)")
        with self._lock:
            known = self._known.get(key)
            if known is None and self.limit is not None and self.evaluations >= self.limit:
                trial.study.stop()  # running trials finish; no new one starts
                self._reject(trial, "the evaluation budget is spent")
            if known is None:
                # Counted now, so parallel trials never overrun the limit. (A repeat of a spec
                # still in flight, possible only with n_jobs > 1, is scored again.)
                self.evaluations += 1
        if known is not None:
            return self._repeat(trial, *known)
        return self._evaluate(trial, spec, key)

    def _reject(self, trial: optuna.Trial, reason: str) -> NoReturn:
        trial.set_user_attr("evaluated", False)
        trial.set_user_attr("rejected", reason)
        raise CandidateFailed(reason)

    def _repeat(self, trial: optuna.Trial, first: int, values: Optional[Values],
                constraint: Optional[float]) -> Values:
        trial.set_user_attr("evaluated", False)
        trial.set_user_attr("duplicate_of", first)
        if values is None:
            raise CandidateFailed(f"the same arch failed in trial {first}")
        if constraint is not None:
            trial.set_constraint(CONSTRAINT, constraint)
        return values

    def _evaluate(self, trial: optuna.Trial, spec: Any, key: str) -> Values:
        c = self.config
        try:
            result = self.client.score(
                spec, [c.proxy], [c.device] if c.device else [], space=c.space,
                seed=c.proxy_seed, measurement=dict(c.measurement), objective=self._objective,
                allow_predicted=c.allow_predicted)
            item = BatchItem(trial.number, spec, result=result)
        except EdgescoreError as exc:
            item = BatchItem(trial.number, spec, error=exc)
        record = record_of(trial.number, item, c)
        for name, value in _attrs(record, item.result, c).items():
            trial.set_user_attr(name, value)
        values, constraint = self._values(record)
        if constraint is not None:
            trial.set_constraint(CONSTRAINT, constraint)
        with self._lock:
            self._known.setdefault(key, (trial.number, values, constraint))
        if values is None:
            raise CandidateFailed(record.error)
        return values

    def _values(self, record: Record) -> tuple[Optional[Values], Optional[float]]:
        if record.error:
            return None, None
        c = self.config
        constraint = (record.latency_ms - c.latency_ms
                      if c.latency_ms > 0 and self.kind in ("constraint", "pareto") else None)
        if self.kind == "pareto":
            return (record.proxy, record.latency_ms), constraint
        return (record.objective if self.kind == "mnas" else record.proxy), constraint


def optimize(study: optuna.Study, objective: Objective, n_trials: int, n_jobs: int = 1,
             callbacks: Iterable[Any] = ()) -> None:
    """`study.optimize` with failed candidates recorded as FAIL trials (not raised), stopped
    once the objective's evaluation limit is spent (or after `n_trials` trials)."""

    def stop_when_spent(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if objective.limit is not None and objective.evaluations >= objective.limit:
            study.stop()

    study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, catch=(CandidateFailed,),
                   callbacks=[*callbacks, stop_when_spent])
