"""Replay agents: answer jobs with latencies a published benchmark measured on real devices.

`edgescore-agent --replay SOURCE --csv FILE --device DEVICE` registers like any agent and speaks
the same protocol, but instead of timing the artifact it looks the architecture up in one latency
column of a table. One agent replays one device of one file; the file's header says which table
it is, and so which space it answers:

- `hw-nas-bench`: HW-NAS-Bench (Li et al., ICLR 2021), NB201 CIFAR-10 networks on a Raspberry
  Pi 4, Pixel 3, Jetson TX2 "edgegpu", Edge TPU, Eyeriss and FPGA. Both the dev-split table
  (`index,arch,c10_<device>_latency...`) and the official examples table (`<device>_latency` +
  `dataset` columns; its CIFAR-10 rows) load.
- `help`: HELP (Lee et al., NeurIPS 2021; HayeonLee/HELP at 45f70eb, MIT), 27 device settings.
  The NB201 table (`index,arch,<device>_ms...`, CIFAR-10 networks) or the FBNet table
  (`row,op_idx_list,arch_str,<device>_ms...`, CIFAR-100 networks; the space's spec is the 22 op
  names joined by single spaces).

A value answers only the network and batch it was measured on: an architecture the table has no
value for, another class count or input size than the table's dataset, or another batch size
than the column's is a NOT_FOUND failure of that job, never a value of another setting. HELP's
GPU settings `<gpu>_1`, `<gpu>_32`, `<gpu>_256` (FBNet: `_64`) are measured at that batch size,
every other column at batch 1 (TableFormat.batch); a job's batch size 0 means the server's
default, batch 1 (a server always sends the resolved size). The result echoes the batch.

Energy: HW-NAS-Bench measured energy per inference (mJ) on three of its devices
(`c10_edgegpu_energy`, `c10_eyeriss_energy`, `c10_fpga_energy`; official table: `<device>_energy`).
A replay agent of such a device answers it in the result's EnergyStats (method "table", sensor
"hw-nas-bench:<device>", mean power = energy / latency); devices and tables without an energy
column say "no sensor" as a board without one does.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgescore.grammar.errors import SpecError
from edgescore.grammar.nb201 import canonical_string, parse_arch_string
from edgescore.v1 import agent_pb2, common_pb2, fleet_pb2

SOURCES = ("hw-nas-bench", "help")
RUNTIMES = {"hw-nas-bench": "hw-nas-bench-replay", "help": "help-replay"}
RUNTIME = RUNTIMES["hw-nas-bench"]
_BATCH_SUFFIX = re.compile(r"_([0-9]+)$")


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    size: tuple[int, int]

    def describe(self) -> str:
        height, width = self.size
        return f"{self.name} networks ({self.num_classes} classes, {height}x{width} input)"


CIFAR10 = Dataset("CIFAR-10", 10, (32, 32))
CIFAR100 = Dataset("CIFAR-100", 100, (32, 32))


def nb201_key(arch: str) -> Optional[str]:
    """The server's spelling of an NB201 cell (edges of each node in input order; no isomorphism
    reduction: a benchmark is keyed by its own spelling), or None for an invalid string."""
    try:
        return canonical_string(parse_arch_string(arch.strip()))
    except SpecError:
        return None


def fbnet_key(arch: str) -> Optional[str]:
    """An FBNet spec: its op names joined by single spaces."""
    return " ".join(arch.split()) or None


@dataclass(frozen=True)
class TableFormat:
    """One kind of latency table: how its header looks and what its rows measure."""

    source: str            # the --replay name
    title: str             # as messages name it
    space: str
    dataset: Dataset
    arch_column: str
    device_column: re.Pattern  # a latency column; group 1 is the device
    key: Callable[[str], Optional[str]]  # arch string -> lookup key (None: not a valid spec)
    dataset_column: str = ""   # rows whose value here is not "cifar10" are skipped

    def devices(self, fields: Sequence[str]) -> dict[str, str]:
        """Device -> its column, for the latency columns the header has."""
        return {m.group(1): c for c in fields if (m := self.device_column.fullmatch(c))}

    def batch(self, device: str, devices: Sequence[str]) -> int:
        """The batch a device's column was measured at. HELP names a GPU's settings `<gpu>_1`,
        `<gpu>_32`, `<gpu>_256` (FBNet: `_64`): `_N` is batch N where the file also has the
        `_1` setting of that device and another one. Every other column is batch 1: gold_6226
        is a Xeon Gold 6226, essential_ph_1 the Essential PH-1 phone."""
        m = _BATCH_SUFFIX.search(device) if self.source == "help" else None
        if m is None:
            return 1
        base = device[:m.start()]
        series = {d for d in devices if d.startswith(base + "_") and d[len(base) + 1:].isdigit()}
        return int(m.group(1)) if f"{base}_1" in series and len(series) > 1 else 1


HW_NAS_BENCH_DEV = TableFormat("hw-nas-bench", "HW-NAS-Bench", "nb201", CIFAR10, "arch",
                               re.compile(r"c10_(\w+?)_latency"), nb201_key)
HW_NAS_BENCH_OFFICIAL = TableFormat("hw-nas-bench", "HW-NAS-Bench", "nb201", CIFAR10, "arch",
                                    re.compile(r"(\w+?)_latency"), nb201_key,
                                    dataset_column="dataset")
HELP_NB201 = TableFormat("help", "HELP", "nb201", CIFAR10, "arch",
                         re.compile(r"(\w+?)_ms"), nb201_key)
HELP_FBNET = TableFormat("help", "HELP", "fbnet", CIFAR100, "arch_str",
                         re.compile(r"(\w+?)_ms"), fbnet_key)
FORMATS = (HELP_FBNET, HELP_NB201, HW_NAS_BENCH_DEV, HW_NAS_BENCH_OFFICIAL)


def detect_format(fields: Sequence[str]) -> TableFormat:
    """The table a CSV header belongs to; ValueError when it is none of them."""
    fields = list(fields)
    for fmt in FORMATS:
        if fmt.arch_column not in fields or not fmt.devices(fields):
            continue
        if fmt.dataset_column and fmt.dataset_column not in fields:
            continue
        return fmt
    raise ValueError("not a HW-NAS-Bench or HELP latency table: expected an 'arch' (or FBNet "
                     "'arch_str') column and <device>_latency or <device>_ms columns, got "
                     f"{', '.join(fields[:8])}{' ...' if len(fields) > 8 else ''}")


def _float(text: str) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    # HW-NAS-Bench writes -1 where a board could not run the network; the dev table leaves it empty.
    return value if math.isfinite(value) and value > 0 else None


def energy_column_of(fmt: TableFormat, latency_column: str, fields: Sequence[str]) -> str:
    """HW-NAS-Bench's energy column beside a device's latency column ("" when it has none)."""
    if fmt.source != "hw-nas-bench" or not latency_column.endswith("_latency"):
        return ""
    column = latency_column[: -len("_latency")] + "_energy"
    return column if column in fields else ""


def _not_found(job: agent_pb2.Job, detail: str) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(failure=agent_pb2.JobFailure(
        job_id=job.job_id, kind=common_pb2.NOT_FOUND, detail=detail))


class ReplayTable:
    """Latency in ms per architecture (the space's lookup key), for one device of one table.

    `source` ("hw-nas-bench" or "help"), when given, must be the table's: the header decides.
    """

    def __init__(self, path: str | Path, device: str, source: str = "") -> None:
        self.path, self.device = Path(path), device
        self.latency_ms: dict[str, float] = {}
        self.energy_mj: dict[str, float] = {}
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            fmt = detect_format(reader.fieldnames or [])
            if source and source != fmt.source:
                raise ValueError(f"{self.path} is a {fmt.title} table, not a {source} one "
                                 f"(--replay {fmt.source})")
            columns = fmt.devices(reader.fieldnames or [])
            if device not in columns:
                raise ValueError(f"unknown {fmt.title} device {device!r}: {self.path.name} has "
                                 f"{', '.join(columns)}")
            self.format, self.batch = fmt, fmt.batch(device, list(columns))
            energy_column = energy_column_of(fmt, columns[device], reader.fieldnames or [])
            for row in reader:
                if fmt.dataset_column and row.get(fmt.dataset_column) != "cifar10":
                    continue
                value, key = _float(row[columns[device]]), fmt.key(row[fmt.arch_column] or "")
                if value is not None and key is not None:
                    self.latency_ms[key] = value
                    energy = _float(row[energy_column]) if energy_column else None
                    if energy is not None:
                        self.energy_mj[key] = energy
        if not self.latency_ms:
            raise ValueError(f"{self.path}: no {fmt.dataset.name} {device} latencies")

    @property
    def space(self) -> str:
        return self.format.space

    @property
    def runtime(self) -> str:
        return RUNTIMES[self.format.source]

    def latency_of(self, arch: str) -> Optional[float]:
        """The table's value for an architecture of its space, however spelled; None if none."""
        key = self.format.key(arch)
        return None if key is None else self.latency_ms.get(key)

    def run_job(self, job: agent_pb2.Job) -> agent_pb2.AgentMessage:
        art, fmt, title = job.artifact, self.format, self.format.title
        value = self.latency_of(art.canonical_arch) if art.space == fmt.space else None
        if value is None:
            what = f"{art.space} architecture {art.canonical_arch!r}" if art.space else "artifact"
            return _not_found(job, f"{title} has no {self.device} latency for this {what}")
        # The table times one dataset's networks: another class count or input size is another
        # network, which it has no value for.
        size = list(job.settings.input_shape[-2:])
        if art.num_classes not in (0, fmt.dataset.num_classes) or size not in (
                [], list(fmt.dataset.size)):
            shape = "x".join(map(str, size)) or "?"
            return _not_found(job, f"{title}'s {self.device} latencies are for "
                                   f"{fmt.dataset.describe()}, not {art.num_classes} classes at "
                                   f"{shape}")
        # One column, one batch size: a latency of batch 256 is never an answer for batch 1.
        asked = job.settings.batch_size or 1  # 0: the server's default
        if asked != self.batch:
            return _not_found(job, f"{title}'s {self.device} latencies are measured at batch "
                                   f"{self.batch}, not batch {asked}: ask for batch_size "
                                   f"{self.batch}")
        stats = common_pb2.LatencyStats(
            n=1, mean_ms=value, median_ms=value, p90_ms=value, p99_ms=value, std_ms=0.0,
            min_ms=value, max_ms=value, samples_ms=[value])
        settings = common_pb2.MeasurementSettings()
        settings.CopyFrom(job.settings)
        settings.batch_size = self.batch
        if len(settings.input_shape) == 4:
            settings.input_shape[0] = self.batch
        return agent_pb2.AgentMessage(result=agent_pb2.JobResult(
            job_id=job.job_id, stats=stats, settings=settings, runtime=self.runtime,
            runtime_version=self.path.name, execution_provider=f"{fmt.source}:{self.device}",
            energy=self.energy_of(art.canonical_arch, value)))

    def energy_of(self, arch: str, latency_ms: float) -> common_pb2.EnergyStats:
        """The table's energy for the architecture (mJ per inference), or "no sensor"."""
        key = self.format.key(arch)
        energy = None if key is None else self.energy_mj.get(key)
        if energy is None:
            return common_pb2.EnergyStats(
                note=f"no sensor: {self.format.title} has no {self.device} energy for this "
                     "architecture" if self.energy_mj else
                     f"no sensor: {self.format.title} has no energy column for {self.device}")
        return common_pb2.EnergyStats(
            measured=True, sensor=f"{self.format.source}:{self.device}", method="table",
            samples=1, energy_per_inference_mj=energy,
            mean_power_w=energy / latency_ms if latency_ms > 0 else 0.0)

    def runtime_info(self) -> fleet_pb2.RuntimeInfo:
        # Both formats: the artifact is never run, only its architecture looked up.
        return fleet_pb2.RuntimeInfo(name=self.runtime, version=self.path.name,
                                     execution_providers=[self.device], formats=["onnx", "tflite"],
                                     answers_by_architecture=True)
