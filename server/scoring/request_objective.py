"""A request's objective (v1 Objective) evaluated on its own proxy values and latencies.

`constraint` and `mnas` judge one candidate by itself; mnas's quality term is the proxy's
percentile in the space's reference population (`raw_proxy`: the value itself), and
`report_percentiles` adds that percentile to constraint and pareto results. `pareto` ranks it
among the candidates of a study (`studies.py`): a named study (`ParetoObjective.study`) collects
every candidate scored under that name on this server; without a name the batch is the request
itself (rank 1), and each ScoreStream is a study of its own. `weighted_rank` is the weighted
mean of percentiles: each proxy's in the space's reference population (`percentiles.py`), each
latency's among the class's stored measurements (faster is higher); its result lists the
percentiles it used.

Every objective has a `metric`: LATENCY (the default) reads each device's median latency,
ENERGY its energy per inference (mJ, LatencyResult.energy) in the same fields: budgets and the
MnasNet target in mJ, a Pareto front over energy, weighted_rank over energy percentiles among the
class's stored energies ("energy:<class>"). A device result without energy (no sensor on the
board) is the objective's per-item error, as a missing latency is.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import grpc

from edgescore.server.errors import InvalidArgument, ServerError, Unimplemented, shown
from edgescore.server.scoring import objectives
from edgescore.server.scoring.percentiles import Populations
from edgescore.server.scoring.studies import MAX_STUDY_NAME, Studies
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import common_pb2, scoring_pb2

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
    if o.metric not in (common_pb2.METRIC_UNSPECIFIED, common_pb2.LATENCY, common_pb2.ENERGY):
        raise InvalidArgument(f"{field}.metric", f"unknown metric {o.metric}")
    unit = "mJ" if o.metric == common_pb2.ENERGY else "ms"

    def need_proxy(name: str) -> None:
        if name not in proxies:
            raise InvalidArgument(f"{field}.proxy",
                                  f"{shown(name)} is not among the requested proxies")

    def need_device(name: str, where: str) -> None:
        if name not in devices:
            raise InvalidArgument(f"{field}.{where}",
                                  f"device class {shown(name)} is not among the requested devices")

    if kind == "constraint":
        need_proxy(o.proxy)
        if not o.latency_budget_ms:
            raise InvalidArgument(f"{field}.latency_budget_ms", "needs at least one device")
        for device, budget in o.latency_budget_ms.items():
            need_device(device, "latency_budget_ms")
            if not budget > 0:
                raise InvalidArgument(f"{field}.latency_budget_ms[{device}]",
                                      f"must be > 0 {unit}")
    elif kind == "mnas":
        need_proxy(o.proxy)
        need_device(o.device_class, "device_class")
        if not 0 < o.target_latency_ms < math.inf:
            raise InvalidArgument(f"{field}.target_latency_ms",
                                  f"must be a finite number > 0 {unit}")
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
                                      f"{shown(name)} is not among the requested proxies")
        for name in o.latency_weights:
            need_device(name, "latency_weights")


def _weights(o: common_pb2.WeightedRankObjective) -> dict[str, float]:
    return objectives.weighted_rank_weights(o.proxy_weights, o.latency_weights)


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
    energy = o.metric == common_pb2.ENERGY
    if energy:
        values = {lat.device_class: lat.energy.energy_per_inference_mj for lat in measured
                  if lat.energy.measured}
    else:
        values = {lat.device_class: lat.stats.median_ms for lat in measured}
    candidate = objectives.Candidate(
        proxies={p.name: p.value for p in result.proxies if p.status.code == 0},
        latency_ms=values, metric="energy" if energy else "latency")
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
        measurement = {lat.device_class: lat.settings for lat in measured}
        out = objectives.weighted_rank(
            candidate, o.proxy_weights, o.latency_weights,
            lambda name, value: populations.proxy_percentile(arch, name, settings[name], value),
            lambda device, ms: populations.latency_percentile(
                device, arch, ms, measurement[device], metric=candidate.metric))
        if energy:
            out = dataclasses.replace(out, percentiles={
                (f"energy:{k[len('latency:'):]}" if k.startswith("latency:") else k): v
                for k, v in out.percentiles.items()})
    else:
        (out,) = objectives.pareto([candidate], o.proxy, o.device_class)
        study = o.study or stream_study
        if study and not out.error:
            rank = studies.add_and_rank(study, (candidate.proxies[o.proxy],
                                                candidate.latency_ms[o.device_class]),
                                        # an energy front is another study than a latency one
                                        o.proxy, ("energy:" if energy else "") + o.device_class)
            out = objectives.Outcome(value=-float(rank), pareto_rank=rank)
    if pct:
        out = dataclasses.replace(out, percentiles={**out.percentiles, **pct})
    return _result_pb(kind, out)


def _proxy_percentile(proxy: str, arch: ParsedArch, candidate: objectives.Candidate,
                      settings: dict, populations: Populations) -> tuple[dict[str, float], str]:
    """({proxy: percentile}, "") or ({}, why not)."""
    missing = objectives.missing(candidate, [proxy], [])
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
