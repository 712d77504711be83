"""What the store keeps: keys (what identifies a cached answer) and records (what comes back)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import edgescore

JOB_STATES = ("queued", "running", "done", "failed")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, so equal settings give equal keys."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _digest(*parts: str) -> str:
    # NUL cannot occur in the parts (JSON escapes it), so the joined text is unambiguous.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ProxyKey:
    """Identifies one proxy value. `settings` is canonical JSON (see `make`)."""

    arch_hash: str
    space: str
    proxy: str
    settings: str = "{}"
    dataset_id: str = ""
    seed: int = 0
    code_version: str = edgescore.__version__

    @classmethod
    def make(cls, arch_hash: str, space: str, proxy: str, settings: Any = None, *,
             dataset_id: Optional[str] = None, seed: Optional[int] = None,
             code_version: str = edgescore.__version__) -> ProxyKey:
        """Key from a settings mapping or dataclass (e.g. proxies.base.ResolvedSettings);
        `dataset_id` and `seed` default to the settings' own fields of those names."""
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        settings = dict(settings or {})
        if dataset_id is None:
            dataset_id = str(settings.get("dataset_id", ""))
        if seed is None:
            seed = int(settings.get("seed", 0))
        return cls(arch_hash, space, proxy, canonical_json(settings), dataset_id, int(seed),
                   code_version)

    @property
    def digest(self) -> str:
        return _digest(self.arch_hash, self.space, self.proxy, self.settings, self.dataset_id,
                       str(self.seed), self.code_version)


@dataclass(frozen=True)
class MeasurementKey:
    """Identifies one latency measurement: the exact artifact on one runtime under one protocol.
    `arch` (the spec as spelled) only for a runtime that looks architectures up instead of
    timing the artifact (replay): two spellings of one artifact get their own values there."""

    artifact_sha256: str
    device_class: str
    runtime: str
    runtime_version: str
    settings: str = "{}"
    arch: str = ""

    @classmethod
    def make(cls, artifact_sha256: str, device_class: str, runtime: str, runtime_version: str,
             settings: Any = None, arch: str = "") -> MeasurementKey:
        return cls(artifact_sha256, device_class, runtime, runtime_version,
                   canonical_json(settings or {}), arch)

    @property
    def digest(self) -> str:
        parts = [self.artifact_sha256, self.device_class, self.runtime, self.runtime_version,
                 self.settings]
        # Timed measurements keep the digest they had before replayed ones were told apart.
        return _digest(*parts, *([self.arch] if self.arch else []))


@dataclass(frozen=True)
class ProxyRecord:
    key: ProxyKey
    value: Optional[float]  # None: no value (the proxy failed, or it was NaN)
    error: str = ""
    flags: tuple[str, ...] = ()
    seconds: float = 0.0
    created_at: float = 0.0


@dataclass(frozen=True)
class MeasurementRecord:
    key: MeasurementKey
    stats: Mapping[str, Any] = field(default_factory=dict)
    agent_id: str = ""
    # Which architecture the artifact came from, when known: the latency predictor trains on it.
    space: str = ""
    arch: str = ""
    created_at: float = 0.0

    def holds_for(self, arch: str) -> bool:
        """Whether it answers for the architecture spelled `arch`: a timed measurement holds for
        every spelling that exports to its artifact, a looked-up one (or one stored before the
        two were told apart) only for its own spelling."""
        return self.arch == arch or self.stats.get("by_architecture") is False

    @property
    def median_ms(self) -> Optional[float]:
        value = self.stats.get("median_ms")
        return float(value) if value is not None else None


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    device_class: str
    state: str
    attempts: int
    payload_ref: str
    agent_id: str
    error: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    device_class: str
    capabilities: Mapping[str, Any]
    first_seen: float
    last_seen: float


def storable_float(value: Optional[float]) -> Optional[float]:
    """NaN becomes None: SQLite turns NaN into NULL anyway, so both engines answer alike."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
