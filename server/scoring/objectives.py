"""Objectives that combine proxy values with latencies, over one batch of candidates.

Pure functions: a list of `Candidate` rows in, one `Outcome` per row out (same order). Proxy
values are "higher is better" (as every served proxy value is); latencies are medians in ms.
A row that lacks a value an objective needs gets an `error` and `rank` 0 instead of failing the
batch, as per-item failures never fail a request. `rank` orders the batch: 1 is best, tied rows
share a rank (1, 2, 2, 4).

`populations` maps a proxy name to its reference population (a `ReferencePopulation`, or any
sequence of values of the space): with one, a proxy value is normalised to its percentile in the
space, which is comparable across batches and across proxies; without one, objectives that need
normalised values fall back to percentiles within the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Protocol, Union

import numpy as np

from .ranks import batch_percentiles, percentile

MNAS_DEFAULT_W = -0.07  # MnasNet's soft-constraint exponent (Tan et al., CVPR 2019)


class HasPercentile(Protocol):
    def percentile(self, value: float) -> float: ...


PopulationLike = Union[HasPercentile, Sequence[float], np.ndarray]
Populations = Optional[Mapping[str, PopulationLike]]


@dataclass(frozen=True)
class Candidate:
    proxies: Mapping[str, float] = field(default_factory=dict)  # proxy name -> served value
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # device class -> median ms


@dataclass(frozen=True)
class Outcome:
    """Mirrors v1 ObjectiveResult (value, feasible, pareto_rank, percentiles, status)."""

    value: float
    feasible: bool = True
    pareto_rank: int = 0  # 1 = non-dominated; 0 = not computed
    rank: int = 0  # 1 = best of the batch; 0 = not ranked (see error)
    percentiles: Mapping[str, float] = field(default_factory=dict)
    error: str = ""


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _population_percentile(name: str, value: float, populations: Populations) -> float:
    population = populations[name]  # type: ignore[index]
    if hasattr(population, "percentile"):
        return float(population.percentile(value))
    return percentile(value, population)


def _percentiles(candidate: Candidate, names: Sequence[str], populations: Populations) -> dict:
    out = {}
    for name in names:
        value = _number(candidate.proxies.get(name))
        if populations and name in populations and value is not None:
            out[name] = _population_percentile(name, value, populations)
    return out


def _failed(message: str, feasible: bool = False, **kw: Any) -> Outcome:
    return Outcome(value=math.nan, feasible=feasible, error=message, **kw)


def _ranked(outcomes: list[Outcome], sort_keys: list[Optional[tuple]]) -> list[Outcome]:
    """Competition ranks by descending sort key; rows with key None stay unranked."""
    order = sorted((i for i, k in enumerate(sort_keys) if k is not None),
                   key=lambda i: sort_keys[i], reverse=True)
    result = list(outcomes)
    for position, i in enumerate(order):
        previous = order[position - 1] if position else None
        tied = previous is not None and sort_keys[previous] == sort_keys[i]
        rank = result[previous].rank if tied else position + 1
        result[i] = replace(result[i], rank=rank)
    return result


def _missing(candidate: Candidate, proxies: Sequence[str], devices: Sequence[str]) -> str:
    gone = [f"proxy {p!r}" for p in proxies if _number(candidate.proxies.get(p)) is None]
    gone += [f"latency on {d!r}" for d in devices if _number(candidate.latency_ms.get(d)) is None]
    return "no " + ", no ".join(gone) if gone else ""


def constraint(candidates: Sequence[Candidate], proxy: str, budgets_ms: Mapping[str, float],
               populations: Populations = None) -> list[Outcome]:
    """Feasible iff latency <= budget on every device of `budgets_ms` (a latency exactly at the
    budget is feasible). value: the proxy value. Order: feasible rows by value; then infeasible
    rows, the least over budget first (largest latency/budget ratio), then by value."""
    for device, budget in budgets_ms.items():
        if not budget > 0:
            raise ValueError(f"latency budget for {device!r} must be > 0 ms, got {budget}")
    outcomes, keys = [], []
    for c in candidates:
        pct = _percentiles(c, [proxy], populations)
        missing = _missing(c, [proxy], list(budgets_ms))
        if missing:
            outcomes.append(_failed(missing, percentiles=pct))
            keys.append(None)
            continue
        value = float(c.proxies[proxy])
        over = max((c.latency_ms[d] / b - 1.0 for d, b in budgets_ms.items()), default=0.0)
        feasible = over <= 0.0
        outcomes.append(Outcome(value=value, feasible=feasible, percentiles=pct))
        keys.append((feasible, 0.0 if feasible else -over, value))
    return _ranked(outcomes, keys)


def mnas(candidates: Sequence[Candidate], proxy: str, device: str, target_ms: float, *,
         w: Optional[float] = None, alpha: float = MNAS_DEFAULT_W, beta: float = MNAS_DEFAULT_W,
         populations: Populations = None) -> list[Outcome]:
    """MnasNet reward ACC * (LAT / T) ** x, with x = alpha if LAT <= T else beta; `w` (when
    given and non-zero, as in v1 MnasObjective) sets both. alpha = 0, beta = -1 is MnasNet's hard
    constraint. ACC is the proxy's percentile / 100 in its reference population when one is
    given, else the raw value, which must then be > 0 (a power-law reward needs it)."""
    if not target_ms > 0:
        raise ValueError(f"target latency must be > 0 ms, got {target_ms}")
    if w:
        alpha = beta = w
    outcomes, keys = [], []
    for c in candidates:
        pct = _percentiles(c, [proxy], populations)
        missing = _missing(c, [proxy], [device])
        acc = pct[proxy] / 100.0 if proxy in pct else _number(c.proxies.get(proxy))
        if not missing and acc is not None and acc <= 0:
            missing = (f"proxy {proxy!r} value {acc} is not positive; the MnasNet reward needs "
                       "a positive accuracy or a reference population to normalise it")
        if missing:
            outcomes.append(_failed(missing, percentiles=pct))
            keys.append(None)
            continue
        latency = float(c.latency_ms[device])
        if not latency > 0:
            outcomes.append(_failed(f"latency {latency} ms on {device!r} is not positive; the "
                                    "MnasNet reward needs one", percentiles=pct))
            keys.append(None)
            continue
        feasible = latency <= target_ms
        try:
            value = acc * (latency / target_ms) ** (alpha if feasible else beta)
        except OverflowError:  # a huge exponent: the reward is beyond floats, in its direction
            value = math.inf
        outcomes.append(Outcome(value=value, feasible=feasible, percentiles=pct))
        keys.append((value,))
    return _ranked(outcomes, keys)


def pareto_fronts(points: Sequence[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting rank (1 = first front) of (score up, latency down) points.
    a dominates b: a is no worse in both and better in one; equal points share a front."""
    remaining, fronts, front = set(range(len(points))), [0] * len(points), 0
    while remaining:
        front += 1
        current = {
            i for i in remaining
            if not any(points[j][0] >= points[i][0] and points[j][1] <= points[i][1]
                       and points[j] != points[i] for j in remaining)
        }
        for i in current:
            fronts[i] = front
        remaining -= current
    return fronts


def pareto(candidates: Sequence[Candidate], proxy: str, device: str,
           populations: Populations = None) -> list[Outcome]:
    """Pareto rank within the batch over (proxy up, latency on `device` down).
    value = -pareto_rank (higher is better); every row is feasible."""
    valid = [i for i, c in enumerate(candidates) if not _missing(c, [proxy], [device])]
    fronts = pareto_fronts([(float(candidates[i].proxies[proxy]),
                             float(candidates[i].latency_ms[device])) for i in valid])
    front_of = dict(zip(valid, fronts))
    outcomes, keys = [], []
    for i, c in enumerate(candidates):
        pct = _percentiles(c, [proxy], populations)
        if i not in front_of:
            outcomes.append(_failed(_missing(c, [proxy], [device]), True, percentiles=pct))
            keys.append(None)
            continue
        outcomes.append(Outcome(value=-float(front_of[i]), pareto_rank=front_of[i],
                                percentiles=pct))
        keys.append((-front_of[i],))
    return _ranked(outcomes, keys)


def _normalised(candidates: Sequence[Candidate], valid: list[int], proxy: str,
                populations: Populations) -> dict[int, float]:
    """Percentile of each valid row's proxy value: in the population if any, else the batch."""
    if populations and proxy in populations:
        return {i: _population_percentile(proxy, float(candidates[i].proxies[proxy]), populations)
                for i in valid}
    pct = batch_percentiles([float(candidates[i].proxies[proxy]) for i in valid])
    return dict(zip(valid, pct))


def weighted_rank(candidates: Sequence[Candidate], proxy_weights: Mapping[str, float],
                  latency_weights: Mapping[str, float],
                  populations: Populations = None) -> list[Outcome]:
    """Weighted mean of percentiles: each proxy's (population, else batch) and each device's
    batch percentile of -latency (faster is higher). value in (0, 100) for positive weights."""
    total = sum(abs(w) for w in (*proxy_weights.values(), *latency_weights.values()))
    if total == 0:
        raise ValueError("weighted_rank needs at least one non-zero weight")
    valid = [i for i, c in enumerate(candidates)
             if not _missing(c, list(proxy_weights), list(latency_weights))]
    scores = {i: 0.0 for i in valid}
    for name, weight in proxy_weights.items():
        for i, p in _normalised(candidates, valid, name, populations).items():
            scores[i] += weight * p
    for device, weight in latency_weights.items():
        pct = batch_percentiles([-float(candidates[i].latency_ms[device]) for i in valid])
        for i, p in zip(valid, pct):
            scores[i] += weight * p
    outcomes, keys = [], []
    for i, c in enumerate(candidates):
        pct = _percentiles(c, list(proxy_weights), populations)
        if i not in scores:
            outcomes.append(_failed(_missing(c, list(proxy_weights), list(latency_weights)),
                                    True, percentiles=pct))
            keys.append(None)
            continue
        outcomes.append(Outcome(value=scores[i] / total, percentiles=pct))
        keys.append((scores[i] / total,))
    return _ranked(outcomes, keys)


def ensemble(candidates: Sequence[Candidate], proxies: Sequence[str],
             populations: Populations = None) -> list[float]:
    """Rank-average of `proxies`: the mean percentile (population, else batch) per row, a proxy
    of its own in (0, 100); NaN for a row missing any of them."""
    if not proxies:
        raise ValueError("an ensemble needs at least one proxy")
    valid = [i for i, c in enumerate(candidates) if not _missing(c, proxies, [])]
    sums = {i: 0.0 for i in valid}
    for name in proxies:
        for i, p in _normalised(candidates, valid, name, populations).items():
            sums[i] += p
    return [sums[i] / len(proxies) if i in sums else math.nan for i in range(len(candidates))]


def with_ensemble(candidates: Sequence[Candidate], name: str, proxies: Sequence[str],
                  populations: Populations = None) -> list[Candidate]:
    """The candidates with the ensemble added as proxy `name`, for use in any objective."""
    values = ensemble(candidates, proxies, populations)
    return [replace(c, proxies={**c.proxies, name: v}) for c, v in zip(candidates, values)]
