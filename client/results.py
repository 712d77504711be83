"""Typed results: plain dataclasses built from the v1 messages."""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from edgescore.client.errors import EdgescoreError
from edgescore.v1 import common_pb2, fleet_pb2, scoring_pb2

_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _status(status: common_pb2.ItemStatus) -> tuple[grpc.StatusCode, str]:
    return _CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message


@dataclass
class ProxyValue:
    name: str
    value: float | None             # None when the proxy failed; higher is better
    unit: str
    transform: str
    provenance: str
    code: grpc.StatusCode
    message: str
    seconds: float
    settings: dict
    flags: list[str]
    components: dict[str, float] = field(default_factory=dict)  # ensemble: member percentiles

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    @classmethod
    def from_pb(cls, p: common_pb2.ProxyResult) -> ProxyValue:
        code, message = _status(p.status)
        return cls(p.name, p.value if code == grpc.StatusCode.OK else None, p.unit, p.transform,
                   common_pb2.Provenance.Name(p.provenance), code, message, p.compute_seconds,
                   MessageToDict(p.settings), list(p.flags), dict(p.components))


@dataclass
class Latency:
    device_class: str
    provenance: str
    code: grpc.StatusCode
    message: str
    failure_kind: str
    median_ms: float | None
    mean_ms: float | None
    p90_ms: float | None
    std_ms: float | None
    n: int
    samples_ms: list[float]
    agent_id: str
    runtime: str
    runtime_version: str
    execution_provider: str
    artifact_sha256: str
    settings: dict
    stats: dict = field(repr=False, default_factory=dict)
    # "fp32", "static_int8" or "dynamic_range_int8": how the measured artifact was quantized.
    quantization: str = ""
    job_id: str = ""  # the agent job that measured it (shared by identical concurrent requests)
    uncertainty_ms: float = 0.0  # PREDICTED: half the predictor's 10-90 % interval
    # v1 EnergyStats as a dict ({"measured": true, "energyPerInferenceMj": ...}); without a
    # sensor on the board: {"note": "no sensor: ..."}.
    energy: dict = field(repr=False, default_factory=dict)
    execution_providers_used: list[str] = field(default_factory=list)
    provider_fallback: bool = False
    delegate: str = ""
    nodes_per_provider: dict = field(default_factory=dict)  # onnxruntime kernels per provider

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    @classmethod
    def from_pb(cls, r: common_pb2.LatencyResult) -> Latency:
        code, message = _status(r.status)
        ok = code == grpc.StatusCode.OK
        s = r.stats
        return cls(
            r.device_class, common_pb2.Provenance.Name(r.provenance), code, message,
            common_pb2.FailureKind.Name(r.status.failure_kind) if not ok else "",
            s.median_ms if ok else None, s.mean_ms if ok else None, s.p90_ms if ok else None,
            s.std_ms if ok else None, s.n, list(s.samples_ms), r.agent_id, r.runtime,
            r.runtime_version, r.execution_provider, r.artifact_sha256,
            MessageToDict(r.settings), MessageToDict(s), quantization=r.quantization,
            job_id=r.job_id, uncertainty_ms=r.uncertainty_ms, energy=MessageToDict(r.energy),
            execution_providers_used=list(r.execution_providers_used),
            provider_fallback=r.provider_fallback, delegate=r.delegate,
            nodes_per_provider=dict(r.nodes_per_provider))


@dataclass
class ObjectiveValue:
    """The request's combined score (v1 ObjectiveResult); value None when it could not be
    computed (e.g. a proxy or latency it needs failed: see message)."""

    value: float | None
    feasible: bool
    pareto_rank: int
    percentiles: dict[str, float]
    code: grpc.StatusCode
    message: str

    @classmethod
    def from_pb(cls, o: common_pb2.ObjectiveResult) -> ObjectiveValue:
        code, message = _status(o.status)
        return cls(o.value if code == grpc.StatusCode.OK else None, o.feasible, o.pareto_rank,
                   dict(o.percentiles), code, message)


@dataclass
class ScoreResult:
    request_id: str
    space: str
    canonical_arch: str
    arch_hash: str
    proxies: dict[str, ProxyValue]
    latencies: dict[str, Latency]
    seconds: float
    objective: ObjectiveValue | None = None  # when the request had an objective

    @classmethod
    def from_pb(cls, r: scoring_pb2.ScoreResult) -> ScoreResult:
        return cls(r.request_id, r.space, r.canonical_arch, r.arch_hash,
                   {p.name: ProxyValue.from_pb(p) for p in r.proxies},
                   {lat.device_class: Latency.from_pb(lat) for lat in r.latencies}, r.seconds,
                   ObjectiveValue.from_pb(r.objective) if r.HasField("objective") else None)

    def to_row(self) -> dict[str, Any]:
        """One flat row: arch, each proxy's value, each device's median latency and source, the
        objective; failures leave the value empty (NaN) and say why in `<name>_error`."""
        row: dict[str, Any] = {"request_id": self.request_id, "space": self.space,
                               "arch": self.canonical_arch, "arch_hash": self.arch_hash}
        for name, p in self.proxies.items():
            row[name] = p.value if p.ok else math.nan
            if not p.ok:
                row[f"{name}_error"] = f"{p.code.name}: {p.message}"
        for device, lat in self.latencies.items():
            row[f"{device}_ms"] = lat.median_ms if lat.ok else math.nan
            row[f"{device}_source"] = lat.provenance
            if not lat.ok:
                row[f"{device}_error"] = f"{lat.code.name}: {lat.message}"
        if self.objective is not None:
            o = self.objective
            row["objective"] = o.value if o.value is not None else math.nan
            row["feasible"] = o.feasible
            if o.pareto_rank:
                row["pareto_rank"] = o.pareto_rank
        return row


def to_dataframe(results: Iterable[ScoreResult]) -> Any:
    """A pandas DataFrame of `ScoreResult.to_row()`s (pandas is optional: `pip install pandas`)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("to_dataframe needs pandas: pip install pandas") from exc
    return pd.DataFrame([r.to_row() for r in results])


@dataclass
class BatchItem:
    """One arch of `score_many`: its position in the input, the arch, and its result or the
    `EdgescoreError` it failed with."""

    index: int
    arch: Any
    result: ScoreResult | None = None
    error: EdgescoreError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_future(cls, index: int, arch: Any, future: Future) -> BatchItem:
        try:
            return cls(index, arch, result=future.result())
        except EdgescoreError as exc:
            return cls(index, arch, error=exc)


@dataclass
class DeviceClass:
    device_class: str
    agents_online: int
    agents_busy: int
    queue_depth: int
    measurements_done: int
    runtimes: list[str]

    @classmethod
    def from_pb(cls, d: fleet_pb2.DeviceClassInfo) -> DeviceClass:
        return cls(d.device_class, d.agents_online, d.agents_busy, d.queue_depth,
                   d.measurements_done, [f"{r.name} {r.version}" for r in d.runtimes])
