"""What the store keeps of latency: measurements (looked up before a job is submitted, kept and
taught to the predictor once one is measured) and job records (what it takes to submit a job
again after a restart).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, Optional

from google.protobuf import json_format

from edgescore.server.compute.plane import Caller
from edgescore.server.compute.units import ArchRef
from edgescore.server.fleet.exports import Artifact, Exports
from edgescore.server.fleet.jobs import JobSpec, Subject
from edgescore.server.fleet.measurement import Target, settings_json
from edgescore.server.fleet.outcomes import Cached
from edgescore.server.fleet.prediction import Predictions, shape
from edgescore.server.fleet.sessions import JobOutcome
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import MeasurementKey, Store, canonical_json
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

RESUME = Caller("resume", wait_for_room=True)  # exports of jobs a previous process left


class Records:
    def __init__(self, store: Optional[Store], predictions: Predictions,
                 on_lookup: Callable[[bool], None] = lambda hit: None) -> None:
        self.store, self.predictions = store, predictions
        self._on_lookup = on_lookup  # hit or miss: the measurement cache metric

    def seen_before(self, device_class: str) -> bool:
        """An agent of the class registered with this store (e.g. before a restart): its job
        waits for an agent to come back, within the latency timeout, rather than NOT_FOUND
        while the agents are still reconnecting."""
        if self.store is None:
            return False
        try:
            return bool(self.store.agents_seen(device_class))
        except Exception:  # noqa: BLE001 - an unreadable store: the class is unknown
            log.warning("could not read the agents seen", exc_info=True)
            return False

    def lookup(self, artifact: Artifact, target: Target, spelled: str) -> Optional[Cached]:
        """A stored measurement of the artifact under the target's settings that holds for the
        architecture as `spelled`."""
        if self.store is None:
            return None
        try:
            records = self.store.find_measurements(artifact.sha256, target.device_class,
                                                   settings_json(target.settings))
        except Exception:  # noqa: BLE001 - the store is a cache: measure when it is unreadable
            log.warning("measurement lookup failed", exc_info=True)
            records = []
        hit = next((r for r in records if "job_result" in r.stats and r.holds_for(spelled)),
                   None)
        self._on_lookup(hit is not None)
        if hit is None:
            return None
        result = json_format.ParseDict(hit.stats["job_result"], agent_pb2.JobResult(),
                                       ignore_unknown_fields=True)
        return Cached(artifact, result.job_id, hit.agent_id, result)

    def keep(self, spec: JobSpec, outcome: JobOutcome) -> None:
        """Once per measured job: the predictor learns it and the store keeps it."""
        r, arch = outcome.result, spec.subject
        assert r is not None
        sha, device_class, settings, _ = spec.key
        self.predictions.learn(device_class, arch, r.stats.median_ms, settings)
        if self.store is None:
            return
        stats = json_format.MessageToDict(r.stats, preserving_proto_field_name=True)
        stats["job_result"] = json_format.MessageToDict(r, preserving_proto_field_name=True)
        stats["by_architecture"] = outcome.by_architecture
        stats["arch_shape"] = list(shape(arch))  # the predictor learns per shape
        try:
            self.store.put_measurement(
                MeasurementKey(sha, device_class, r.runtime, r.runtime_version, settings,
                               arch.as_spelled if outcome.by_architecture else ""),
                stats, agent_id=outcome.agent_id, space=arch.space, arch=arch.as_spelled)
        except Exception:  # noqa: BLE001 - the client still gets its result
            log.warning("could not store the measurement of job %s", outcome.job_id,
                        exc_info=True)


def job_spec(arch: ParsedArch, target: Target, artifact: Artifact, timeout: float, job_id: str,
             spelling_matters: bool, priority: int = 0) -> JobSpec:
    """The job measuring `artifact` on the target, with the record it is stored under."""
    s = target.settings
    job = agent_pb2.Job(
        artifact=agent_pb2.Artifact(
            sha256=artifact.sha256, format=s.format, precision=s.precision,
            data=artifact.data, input_name=getattr(arch.payload, "input_name", "input"),
            space=arch.space, canonical_arch=arch.as_spelled, num_classes=arch.num_classes),
        settings=s, timeout_seconds=timeout, job_id=job_id)
    record = canonical_json({
        "space": arch.space, "arch": arch.as_spelled, "num_classes": arch.num_classes,
        "input_resolution": arch.input_resolution, "timeout": timeout,
        "settings": json_format.MessageToDict(s, preserving_proto_field_name=True)})
    key = (artifact.sha256, target.device_class, settings_json(s),
           arch.as_spelled if spelling_matters else "")
    return JobSpec(key, target.device_class, job, record, Subject.of(arch), priority)


async def rebuild(record: Any, exports: Exports, spelling_matters: Callable[[str], bool]
                  ) -> JobSpec:
    """The job of a stored record (a `job_spec` record), under its own id, its artifact
    exported again."""
    p = json.loads(record.payload_ref)
    arch = spaces.get_space(p["space"]).parse(p["arch"], p["num_classes"],
                                              p["input_resolution"])
    ref = ArchRef(p["space"], p["arch"], p["num_classes"], p["input_resolution"])
    s = json_format.ParseDict(p["settings"], common_pb2.MeasurementSettings())
    artifact = await exports.get(arch, ref, s.format, s.precision, s.batch_size, RESUME)
    spec = job_spec(arch, Target(record.device_class, s), artifact, p["timeout"], record.job_id,
                    spelling_matters(record.device_class))
    return dataclasses.replace(spec, record=record.payload_ref)
