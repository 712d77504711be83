"""HW-NAS-Bench replay: answer NB201 jobs with latencies HW-NAS-Bench measured on real boards.

`edgescore-agent --replay hw-nas-bench --csv FILE --device raspi4` registers like any agent and
speaks the same protocol, but instead of timing the artifact it looks the architecture up in the
table (Li et al., ICLR 2021: Raspberry Pi 4, Pixel 3, Jetson TX2 "edgegpu", Edge TPU, Eyeriss,
FPGA). An architecture the table has no value for is a NOT_FOUND failure of that job. Both the
dev-split table (`c10_<device>_latency` columns) and the official examples table
(`<device>_latency` + `dataset` columns; CIFAR-10 rows) load.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from edgescore.v1 import agent_pb2, common_pb2, fleet_pb2

DEVICES = ("raspi4", "pixel3", "edgegpu", "edgetpu", "eyeriss", "fpga")
RUNTIME = "hw-nas-bench-replay"
CIFAR10_CLASSES, CIFAR10_SIZE = 10, [32, 32]


def normalise_nb201(arch: str) -> str:
    """Edges of each node in input-index order: the server's canonical NB201 string."""
    nodes = arch.strip().split("+")
    out = []
    for node in nodes:
        edges = [e for e in node.strip("|").split("|") if e]
        edges.sort(key=lambda e: int(e.rsplit("~", 1)[1]))
        out.append("|" + "|".join(edges) + "|")
    return "+".join(out)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    # HW-NAS-Bench writes -1 where a board could not run the network.
    return value if math.isfinite(value) and value > 0 else None


class ReplayTable:
    """Latency in ms per canonical NB201 string, for one device, CIFAR-10 networks."""

    def __init__(self, path: str | Path, device: str) -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown HW-NAS-Bench device {device!r}; known: {', '.join(DEVICES)}")
        self.path, self.device = Path(path), device
        self.latency_ms: dict[str, float] = {}
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            column = next((c for c in (f"c10_{device}_latency", f"{device}_latency")
                           if c in fields), None)
            if column is None or "arch" not in fields:
                raise ValueError(f"{self.path}: no 'arch' and latency column for {device}")
            for row in reader:
                if row.get("dataset", "cifar10") != "cifar10":
                    continue
                value = _float(row[column])
                if value is not None:
                    self.latency_ms[normalise_nb201(row["arch"])] = value
        if not self.latency_ms:
            raise ValueError(f"{self.path}: no CIFAR-10 {device} latencies")

    def run_job(self, job: agent_pb2.Job) -> agent_pb2.AgentMessage:
        art = job.artifact
        value = self.latency_ms.get(normalise_nb201(art.canonical_arch)) if (
            art.space == "nb201" and art.canonical_arch) else None
        if value is None:
            what = f"{art.space} architecture {art.canonical_arch!r}" if art.space else "artifact"
            return self._not_found(
                job, f"HW-NAS-Bench has no {self.device} latency for this {what}")
        # The table times CIFAR-10 networks on 32x32 images: another class count or input size
        # is another network, which it has no value for.
        size = list(job.settings.input_shape[-2:])
        if art.num_classes not in (0, CIFAR10_CLASSES) or size not in ([], CIFAR10_SIZE):
            shape = "x".join(map(str, size)) or "?"
            return self._not_found(job, f"HW-NAS-Bench's {self.device} latencies are for CIFAR-10 "
                                        f"networks (10 classes, 32x32 input), not {art.num_classes}"
                                        f" classes at {shape}")
        stats = common_pb2.LatencyStats(
            n=1, mean_ms=value, median_ms=value, p90_ms=value, p99_ms=value, std_ms=0.0,
            min_ms=value, max_ms=value, samples_ms=[value])
        settings = common_pb2.MeasurementSettings()
        settings.CopyFrom(job.settings)
        return agent_pb2.AgentMessage(result=agent_pb2.JobResult(
            job_id=job.job_id, stats=stats, settings=settings, runtime=RUNTIME,
            runtime_version=self.path.name, execution_provider=f"hw-nas-bench:{self.device}"))

    @staticmethod
    def _not_found(job: agent_pb2.Job, detail: str) -> agent_pb2.AgentMessage:
        return agent_pb2.AgentMessage(failure=agent_pb2.JobFailure(
            job_id=job.job_id, kind=common_pb2.NOT_FOUND, detail=detail))

    def runtime_info(self) -> fleet_pb2.RuntimeInfo:
        # Both formats: the artifact is never run, only its architecture looked up.
        return fleet_pb2.RuntimeInfo(name=RUNTIME, version=self.path.name,
                                     execution_providers=[self.device], formats=["onnx", "tflite"],
                                     answers_by_architecture=True)
