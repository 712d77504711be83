"""Objectives that combine proxy values with latencies.

Pure functions. `constraint`, `mnas` and `pareto` take a list of `Candidate` rows and give one
`Outcome` per row (same order); `weighted_rank` judges one candidate by the percentiles it is
given. Proxy values are "higher is better" (as every served proxy value is); latencies are
medians in ms. An objective on energy (v1 Metric ENERGY) is the same objective with each
device's energy per inference (mJ) in `latency_ms` and `metric` "energy" naming it in messages.
A row that lacks a value an objective needs gets an `error` and `rank` 0 instead of failing the
batch, as per-item failures never fail a request. `rank` orders the batch: 1 is best,
tied rows share a rank (1, 2, 2, 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from edgescore.server.errors import ServerError
from edgescore.server.scoring.studies import front_ranks

MNAS_DEFAULT_W = -0.07  # MnasNet's soft-constraint exponent (Tan et al., CVPR 2019)


@dataclass(frozen=True)
class Candidate:
    proxies: Mapping[str, float] = field(default_factory=dict)  # proxy name -> served value
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # device class -> median ms
    metric: str = "latency"  # what latency_ms holds: "latency" (ms) or "energy" (mJ/inference)


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


def missing(candidate: Candidate, proxies: Sequence[str], devices: Sequence[str]) -> str:
    """What of `proxies` and `devices` the candidate lacks ("no proxy 'p', ..."), or ""."""
    gone = [f"proxy {p!r}" for p in proxies if _number(candidate.proxies.get(p)) is None]
    gone += [f"{candidate.metric} on {d!r}" for d in devices
             if _number(candidate.latency_ms.get(d)) is None]
    return "no " + ", no ".join(gone) if gone else ""


def constraint(candidates: Sequence[Candidate], proxy: str, budgets_ms: Mapping[str, float]
               ) -> list[Outcome]:
    """Feasible iff latency <= budget on every device of `budgets_ms` (a latency exactly at the
    budget is feasible). value: the proxy value. Order: feasible rows by value; then infeasible
    rows, the least over budget first (largest latency/budget ratio), then by value."""
    for device, budget in budgets_ms.items():
        if not budget > 0:
            raise ValueError(f"latency budget for {device!r} must be > 0 ms, got {budget}")
    outcomes, keys = [], []
    for c in candidates:
        gone = missing(c, [proxy], list(budgets_ms))
        if gone:
            outcomes.append(_failed(gone))
            keys.append(None)
            continue
        value = float(c.proxies[proxy])
        over = max((c.latency_ms[d] / b - 1.0 for d, b in budgets_ms.items()), default=0.0)
        feasible = over <= 0.0
        outcomes.append(Outcome(value=value, feasible=feasible))
        keys.append((feasible, 0.0 if feasible else -over, value))
    return _ranked(outcomes, keys)


def mnas(candidates: Sequence[Candidate], proxy: str, device: str, target_ms: float, *,
         w: Optional[float] = None, alpha: float = MNAS_DEFAULT_W, beta: float = MNAS_DEFAULT_W
         ) -> list[Outcome]:
    """MnasNet reward ACC * (LAT / T) ** x, with x = alpha if LAT <= T else beta; `w` (when
    given and non-zero, as in v1 MnasObjective) sets both. alpha = 0, beta = -1 is MnasNet's hard
    constraint. ACC is the candidate's value of `proxy` (the server passes the percentile / 100
    in the space's reference population unless asked for the raw value), which must be > 0: a
    power-law reward needs it."""
    if not target_ms > 0:
        raise ValueError(f"target latency must be > 0 ms, got {target_ms}")
    if w:
        alpha = beta = w
    outcomes, keys = [], []
    for c in candidates:
        gone = missing(c, [proxy], [device])
        acc = _number(c.proxies.get(proxy))
        if not gone and acc is not None and acc <= 0:
            gone = (f"proxy {proxy!r} value {acc} is not positive; the MnasNet reward needs "
                       "a positive accuracy or a reference population to normalise it")
        if gone:
            outcomes.append(_failed(gone))
            keys.append(None)
            continue
        latency = float(c.latency_ms[device])
        if not latency > 0:
            outcomes.append(_failed(f"latency {latency} ms on {device!r} is not positive; the "
                                    "MnasNet reward needs one"))
            keys.append(None)
            continue
        feasible = latency <= target_ms
        try:
            value = acc * (latency / target_ms) ** (alpha if feasible else beta)
        except OverflowError:  # a huge exponent: the reward is beyond floats, in its direction
            value = math.inf
        outcomes.append(Outcome(value=value, feasible=feasible))
        keys.append((value,))
    return _ranked(outcomes, keys)


def pareto(candidates: Sequence[Candidate], proxy: str, device: str) -> list[Outcome]:
    """Pareto rank within the batch over (proxy up, latency on `device` down).
    value = -pareto_rank (higher is better); every row is feasible."""
    valid = [i for i, c in enumerate(candidates) if not missing(c, [proxy], [device])]
    fronts = front_ranks([(float(candidates[i].proxies[proxy]),
                             float(candidates[i].latency_ms[device])) for i in valid])
    front_of = dict(zip(valid, fronts))
    outcomes, keys = [], []
    for i, c in enumerate(candidates):
        if i not in front_of:
            outcomes.append(_failed(missing(c, [proxy], [device]), True))
            keys.append(None)
            continue
        outcomes.append(Outcome(value=-float(front_of[i]), pareto_rank=front_of[i]))
        keys.append((-front_of[i],))
    return _ranked(outcomes, keys)


def weighted_rank_weights(proxy_weights: Mapping[str, float],
                          latency_weights: Mapping[str, float]) -> dict[str, float]:
    """Every weight under the name its percentile is reported by ("latency:<class>")."""
    return {**proxy_weights, **{f"latency:{d}": w for d, w in latency_weights.items()}}


def weighted_rank(candidate: Candidate, proxy_weights: Mapping[str, float],
                  latency_weights: Mapping[str, float],
                  proxy_percentile: Callable[[str, float], float],
                  latency_percentile: Callable[[str, float], float]) -> Outcome:
    """Weighted mean of percentiles: each proxy's value's (`proxy_percentile(name, value)`, in the
    space's reference population) and each device's latency's (`latency_percentile(device, ms)`,
    faster is higher). value in (0, 100) for positive weights; `percentiles` lists those used,
    latencies as "latency:<class>". A percentile that cannot be had (ServerError) fails the row."""
    weights = weighted_rank_weights(proxy_weights, latency_weights)
    total = sum(abs(w) for w in weights.values())
    if total == 0:
        raise ValueError("weighted_rank needs at least one non-zero weight")
    gone = missing(candidate, list(proxy_weights), list(latency_weights))
    if gone:
        return Outcome(value=math.nan, error=gone)
    pct: dict[str, float] = {}
    try:
        for name in proxy_weights:
            pct[name] = proxy_percentile(name, candidate.proxies[name])
        for device in latency_weights:
            pct[f"latency:{device}"] = latency_percentile(device, candidate.latency_ms[device])
    except ServerError as exc:
        return Outcome(value=math.nan, error=exc.message, percentiles=pct)
    value = sum(w * pct[name] for name, w in weights.items()) / total
    return Outcome(value=value, percentiles=pct)
