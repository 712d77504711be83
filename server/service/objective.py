"""A request's objective (v1 Objective) evaluated on its own proxy values and latencies.

`constraint` and `mnas` judge one candidate by itself; mnas's quality term is the proxy's
percentile in the space's reference population (`raw_proxy`: the value itself), and
`report_percentiles` adds that percentile to constraint and pareto results. `pareto` ranks it
among the candidates of a study: a named study (`ParetoObjective.study`) collects every
candidate scored under that name on this server; without a name the batch is the request
itself (rank 1), and each ScoreStream is a study of its own. `weighted_rank` is the weighted
mean of percentiles: each proxy's in the space's reference population (`populations.py`), each
latency's among the class's stored measurements (faster is higher); its result lists the
percentiles it used.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
from collections import OrderedDict
from typing import Optional

import grpc

from edgescore.server.errors import (
    InvalidArgument,
    ResourceExhausted,
    ServerError,
    Unimplemented,
)
from edgescore.server.scoring import objectives
from edgescore.server.service.populations import Populations
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import common_pb2, scoring_pb2

MAX_STUDIES = 1_000
MAX_STUDY_POINTS = 200_000
MAX_STUDY_NAME = 200
# |w| beyond this makes (latency / target) ** w overflow for ordinary latencies; MnasNet's
# soft exponent is -0.07 and its hard one -1.
MAX_MNAS_EXPONENT = 100.0


def validate(request: scoring_pb2.ScoreRequest) -> None:
    """Request-level checks, before any work: the objective may only use what is requested."""
    kind = request.objective.WhichOneof("kind")
    if kind is None:
        return
    proxies = {p.name for p in request.proxies}
    devices = {d.device_class for d in request.devices}
    o = getattr(request.objective, kind)
    field = f"objective.{kind}"

    def need_proxy(name: str) -> None:
        if name not in proxies:
            raise InvalidArgument(f"{field}.proxy", f"'{name}' is not among the requested proxies")

    def need_device(name: str, where: str) -> None:
        if name not in devices:
            raise InvalidArgument(f"{field}.{where}",
                                  f"device class '{name}' is not among the requested devices")

    if kind == "constraint":
        need_proxy(o.proxy)
        if not o.latency_budget_ms:
            raise InvalidArgument(f"{field}.latency_budget_ms", "needs at least one device")
        for device, budget in o.latency_budget_ms.items():
            need_device(device, "latency_budget_ms")
            if not budget > 0:
                raise InvalidArgument(f"{field}.latency_budget_ms[{device}]", "must be > 0 ms")
    elif kind == "mnas":
        need_proxy(o.proxy)
        need_device(o.device_class, "device_class")
        if not 0 < o.target_latency_ms < math.inf:
            raise InvalidArgument(f"{field}.target_latency_ms", "must be a finite number > 0 ms")
        if not abs(o.w) <= MAX_MNAS_EXPONENT:  # NaN fails this too
            raise InvalidArgument(f"{field}.w", f"must be within -{MAX_MNAS_EXPONENT:g}.."
                                                f"{MAX_MNAS_EXPONENT:g} (MnasNet: -0.07)")
    elif kind == "pareto":
        need_proxy(o.proxy)
        need_device(o.device_class, "device_class")
        if len(o.study) > MAX_STUDY_NAME:
            raise InvalidArgument(f"{field}.study", f"at most {MAX_STUDY_NAME} characters")
    else:
        weights = _weights(o)
        if not any(w != 0 for w in weights.values()):
            raise InvalidArgument(f"{field}.proxy_weights", "needs at least one non-zero weight")
        for name, w in weights.items():
            if not math.isfinite(w):
                raise InvalidArgument(f"{field}.proxy_weights[{name}]", "must be finite")
        for name in o.proxy_weights:
            if name not in proxies:
                raise InvalidArgument(f"{field}.proxy_weights",
                                      f"'{name}' is not among the requested proxies")
        for name in o.latency_weights:
            need_device(name, "latency_weights")


def front_ranks(points: list[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting of (score up, latency down) points in O(n log n): 1 = first front.
    Processed by score descending (then latency ascending), a point's dominators come before it;
    it joins the first front whose lowest latency so far is above its own (an identical point
    joins its twin's front: equal points do not dominate each other)."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    best: list[float] = []  # per front, the lowest latency of its points so far (ascending)
    ranks = [0] * len(points)
    previous: Optional[int] = None
    for i in order:
        if previous is not None and points[previous] == points[i]:
            ranks[i] = ranks[previous]
        else:
            front = bisect.bisect_right(best, points[i][1])
            if front == len(best):
                best.append(points[i][1])
            else:
                best[front] = min(best[front], points[i][1])
            ranks[i] = front + 1
        previous = i
    return ranks


class Studies:
    """Named collections of (proxy, latency) points, in memory, bounded. A study is kept per
    (name, proxy, device class): points of another proxy or board are on other scales, so one
    name used with several of them holds several fronts, never a mixed one."""

    def __init__(self) -> None:
        self._points: OrderedDict[tuple[str, str, str], list[tuple[float, float]]] = \
            OrderedDict()
        self._lock = threading.Lock()

    def add_and_rank(self, name: str, point: tuple[float, float], proxy: str = "",
                     device_class: str = "") -> int:
        key = (name, proxy, device_class)
        with self._lock:
            points = self._points.setdefault(key, [])
            if len(points) >= MAX_STUDY_POINTS:
                raise ResourceExhausted(f"study '{name}' holds {MAX_STUDY_POINTS} candidates, "
                                        "the most one study may hold")
            points.append(point)
            self._points.move_to_end(key)
            while len(self._points) > MAX_STUDIES:
                self._points.popitem(last=False)
            snapshot = list(points)
        return front_ranks(snapshot)[-1]


def _weights(o: common_pb2.WeightedRankObjective) -> dict[str, float]:
    """Every weight under the name its percentile is reported by ("latency:<class>")."""
    return {**o.proxy_weights, **{f"latency:{d}": w for d, w in o.latency_weights.items()}}


def _weighted_rank(o: common_pb2.WeightedRankObjective, arch: ParsedArch,
                   candidate: objectives.Candidate, settings: dict,
                   populations: Populations,
                   measurement: dict[str, common_pb2.MeasurementSettings]
                   ) -> objectives.Outcome:
    missing = objectives._missing(candidate, list(o.proxy_weights), list(o.latency_weights))
    if missing:
        return objectives.Outcome(value=math.nan, error=missing)
    pct: dict[str, float] = {}
    try:
        for name in o.proxy_weights:
            pct[name] = populations.proxy_percentile(arch, name, settings[name],
                                                     candidate.proxies[name])
        for device in o.latency_weights:
            pct[f"latency:{device}"] = populations.latency_percentile(
                device, arch, candidate.latency_ms[device], measurement[device])
    except ServerError as exc:
        return objectives.Outcome(value=math.nan, error=exc.message, percentiles=pct)
    weights = _weights(o)
    total = sum(abs(w) for w in weights.values())
    value = sum(w * pct[name] for name, w in weights.items()) / total
    return objectives.Outcome(value=value, percentiles=pct)


def evaluate(request: scoring_pb2.ScoreRequest, result: scoring_pb2.ScoreResult,
             studies: Studies, stream_study: str = "", *, arch: Optional[ParsedArch] = None,
             settings: Optional[dict] = None, populations: Optional[Populations] = None
             ) -> Optional[common_pb2.ObjectiveResult]:
    """The objective's result; `arch`, `settings` (proxy -> resolved settings) and
    `populations` are what weighted_rank needs."""
    kind = request.objective.WhichOneof("kind")
    if kind is None:
        return None
    o = getattr(request.objective, kind)
    measured = [lat for lat in result.latencies if lat.status.code == 0]
    candidate = objectives.Candidate(
        proxies={p.name: p.value for p in result.proxies if p.status.code == 0},
        latency_ms={lat.device_class: lat.stats.median_ms for lat in measured})
    proxy_pct = kind != "weighted_rank" and (request.objective.report_percentiles or (
        kind == "mnas" and not o.raw_proxy))
    if (proxy_pct or kind == "weighted_rank") and (
            populations is None or arch is None or settings is None):
        raise Unimplemented(f"objective.{kind}: this server has no reference populations")
    if proxy_pct:
        pct, error = _proxy_percentile(o.proxy, arch, candidate, settings, populations)
        if error:
            out = objectives.Outcome(value=math.nan, error=error)
            return _result_pb(kind, out)
        if kind == "mnas" and not o.raw_proxy:
            # The reward's quality term: the percentile, scale-free and positive.
            candidate = dataclasses.replace(
                candidate, proxies={**candidate.proxies, o.proxy: pct[o.proxy] / 100.0})
    else:
        pct = {}
    if kind == "constraint":
        (out,) = objectives.constraint([candidate], o.proxy, dict(o.latency_budget_ms))
    elif kind == "mnas":
        (out,) = objectives.mnas([candidate], o.proxy, o.device_class, o.target_latency_ms,
                                 w=o.w or None)
    elif kind == "weighted_rank":
        out = _weighted_rank(o, arch, candidate, settings, populations,
                             {lat.device_class: lat.settings for lat in measured})
    else:
        (out,) = objectives.pareto([candidate], o.proxy, o.device_class)
        study = o.study or stream_study
        if study and not out.error:
            rank = studies.add_and_rank(study, (candidate.proxies[o.proxy],
                                                candidate.latency_ms[o.device_class]),
                                        o.proxy, o.device_class)
            out = objectives.Outcome(value=-float(rank), pareto_rank=rank)
    if pct:
        out = dataclasses.replace(out, percentiles={**out.percentiles, **pct})
    return _result_pb(kind, out)


def _proxy_percentile(proxy: str, arch: ParsedArch, candidate: objectives.Candidate,
                      settings: dict, populations: Populations) -> tuple[dict[str, float], str]:
    """({proxy: percentile}, "") or ({}, why not)."""
    missing = objectives._missing(candidate, [proxy], [])
    if missing:
        return {}, missing
    try:
        return {proxy: populations.proxy_percentile(arch, proxy, settings[proxy],
                                                    candidate.proxies[proxy])}, ""
    except ServerError as exc:
        return {}, exc.message


def _result_pb(kind: str, out: objectives.Outcome) -> common_pb2.ObjectiveResult:
    pb = common_pb2.ObjectiveResult(feasible=out.feasible, pareto_rank=out.pareto_rank,
                                    percentiles=dict(out.percentiles))
    if out.error:
        pb.status.code = grpc.StatusCode.FAILED_PRECONDITION.value[0]
        pb.status.message = f"objective.{kind}: {out.error}"
    else:
        pb.value = out.value
    return pb
