"""Artifacts of candidates: each exported once per key on the compute plane, kept by sha256.

The key is the network the export builds (NB201 spellings that share a live cell share it), its
class count and resolution, and the artifact's format, precision and batch size. Concurrent
requests for one artifact wait on one export; an int8 artifact is quantized from the float one,
which is exported (and kept) first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edgescore.server.compute.flights import Flights
from edgescore.server.compute.plane import Caller
from edgescore.server.compute.units import ArchRef, ExportUnit
from edgescore.server.export.artifacts import ArtifactStore
from edgescore.server.export.exporter import as_uploaded
from edgescore.server.export.result import FORMAT_NAMES, ExportResult
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import common_pb2

# (export hash, class count, resolution, format, precision, batch size)
ArtifactKey = tuple[str, int, int, int, int, int]
# Runs one export unit for a caller (the compute plane's `run`).
RunExport = Callable[[ExportUnit, Caller], Awaitable[ExportResult]]


@dataclass(frozen=True)
class Artifact:
    sha256: str
    data: bytes
    quantization: str  # see ExportResult.quantization


class Exports:
    def __init__(self, run_export: RunExport, artifacts: ArtifactStore | None = None,
                 on_export: Callable[[str, str], None] = lambda fmt, outcome: None) -> None:
        self._run = run_export
        self.artifacts = artifacts or ArtifactStore()
        self._on_export = on_export  # (format name, "ok" | "error"): the exports metric
        self._by_key: dict[ArtifactKey, tuple[str, str]] = {}  # -> (sha256, quantization)
        self._flights = Flights()

    async def get(self, arch: ParsedArch, ref: ArchRef, fmt: int, precision: int,
                  batch_size: int, caller: Caller) -> Artifact:
        """The artifact, from the cache or exported now (ServerError when it cannot be)."""
        key = (arch.export_hash, arch.num_classes, arch.input_resolution, fmt, precision,
               batch_size)
        known = self._by_key.get(key)
        data = self.artifacts.get(known[0]) if known else None
        if known is not None and data is not None:
            return Artifact(known[0], data, known[1])
        return await self._flights.join_or_launch(
            key, lambda: self._export(key, arch, ref, caller))

    async def _export(self, key: ArtifactKey, arch: ParsedArch, ref: ArchRef, caller: Caller
                      ) -> Artifact:
        fmt, precision, batch_size = key[3:]
        name = FORMAT_NAMES.get(fmt, str(fmt))
        try:
            if arch.space == "onnx":
                result = as_uploaded(arch, fmt, precision)  # the upload itself: no work to do
            else:
                fp32 = None
                if precision != common_pb2.FP32:
                    fp32 = (await self.get(arch, ref, fmt, common_pb2.FP32, batch_size,
                                           caller)).data
                result = await self._run(ExportUnit(ref, fmt, precision, batch_size, fp32),
                                         caller)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._on_export(name, "error")
            raise
        self._on_export(name, "ok")
        sha = await asyncio.to_thread(self.artifacts.put, result.data)
        self._by_key[key] = (sha, result.quantization)
        return Artifact(sha, result.data, result.quantization)
