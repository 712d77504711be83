"""Units of work the compute plane runs: a candidate's proxies, or one artifact export.

A unit is plain data (it crosses into worker processes and Ray), and `execute` is the one
function every worker runs on it, so the local pool and a Ray cluster give identical values. The
architecture travels as the spec the request gave, and the worker parses it again: parsing is
deterministic and cheap next to the work, and a spec is plain data where a parsed network is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, Union

from edgescore.server import heap
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.datasets import RegisteredDataset

# Every computation runs on one torch thread: values then do not depend on the machine's core
# count (several proxies round differently with more threads), and one thread per worker process
# is the fastest way to share a box's cores among concurrent computations.
TORCH_THREADS = 1


@dataclass(frozen=True)
class ArchRef:
    """What a worker parses to get the request's architecture back."""

    space: str
    spec: Any                  # as `SearchSpace.parse` takes it (string, dict, ONNX dict)
    num_classes: int = 0
    input_resolution: int = 0


@dataclass(frozen=True)
class ProxyUnit:
    """Proxies of one candidate, computed together (shared passes, one network build)."""

    arch: ArchRef
    calls: tuple[tuple[str, SettingsOverride], ...]
    device: str = "cpu"
    # Registered calibration datasets the calls use: the worker does not share the server's memory.
    datasets: tuple[RegisteredDataset, ...] = ()

    @property
    def kind(self) -> str:
        return "proxies"


@dataclass(frozen=True)
class ExportUnit:
    """One artifact of a candidate (`fp32`: the float artifact an int8 one is quantized from)."""

    arch: ArchRef
    fmt: int
    precision: int
    batch_size: int
    fp32: Optional[bytes] = None

    @property
    def kind(self) -> str:
        return "export"


Unit = Union[ProxyUnit, ExportUnit]
Emit = Callable[[Any], None]


def prepare_process() -> None:
    """Once per worker process, before its first unit."""
    import torch

    torch.set_num_threads(TORCH_THREADS)


def execute(unit: Unit, emit: Emit, checkpoint: Callable[[], None]) -> Any:
    """Run `unit`: a ProxyUnit emits each ProxyOutcome as it is computed (so work done before a
    cap or a cancellation is kept) and returns None; an ExportUnit returns its ExportResult.
    Request errors (ServerError) and `WorkAbandoned` propagate. The worker process lives on, so
    what a large upload's unit freed is given back to the system (`heap`)."""
    try:
        return _execute(unit, emit, checkpoint)
    finally:
        heap.after_upload(heap.upload_bytes(unit.arch.spec))


def _execute(unit: Unit, emit: Emit, checkpoint: Callable[[], None]) -> Any:
    from edgescore.server.spaces import registry as spaces

    space = spaces.get_space(unit.arch.space)
    arch = space.parse(unit.arch.spec, unit.arch.num_classes, unit.arch.input_resolution)
    if isinstance(unit, ExportUnit):
        from edgescore.server.export.exporter import Exporter

        checkpoint()
        return Exporter().export(arch, unit.fmt, unit.precision, unit.batch_size, unit.fp32)
    from edgescore.server.proxies import datasets, engine

    for entry in unit.datasets:
        datasets.STORE.put(entry)
    for outcome in engine.iter_proxies(space, arch, list(unit.calls), unit.device, checkpoint):
        emit(outcome)
    return None
