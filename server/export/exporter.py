"""One entry point for every artifact: build the network, export, quantize, check parity.

int8 tries static (calibrated) quantization first and falls back to dynamic-range quantization
when static quantization raises, quantizes nothing, or misses the parity tolerance; the result
says which one it is. Every converter error becomes an ExportError with its failure kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from edgescore.server.export import calibration, onnx_int8, parity, tflite_int8
from edgescore.server.export.onnx_export import export_onnx
from edgescore.server.export.result import (
    DYNAMIC_RANGE_INT8,
    FORMAT_NAMES,
    FP32,
    PRECISION_NAMES,
    STATIC_INT8,
    ExportError,
    ExportResult,
    ParityReport,
    classify,
)
from edgescore.server.export.tflite_export import export_tflite
from edgescore.server.global_rng import GLOBAL_RNG_LOCK
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import common_pb2

log = logging.getLogger(__name__)

# Exports are built from a fixed seed: latency does not depend on the weights, and a fixed seed
# makes the artifact bytes (hence its sha256) identical for the same architecture.
EXPORT_SEED = 0


def build_network(arch: ParsedArch) -> nn.Module:
    """The exportable network of `arch` with the export seed's weights (global RNG untouched)."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(EXPORT_SEED)
        return spaces.get_space(arch.space).build_exportable(arch)


def _fp32(module: nn.Module, fmt: int, shape: tuple[int, ...]) -> bytes:
    if fmt == common_pb2.TFLITE:
        return export_tflite(module, shape)
    return export_onnx(module, shape)


def _quantizers(fmt: int, calib: list) -> list[tuple[str, Callable[[bytes], bytes]]]:
    if fmt == common_pb2.TFLITE:
        return [(STATIC_INT8, lambda b: tflite_int8.quantize_static(b, calib)),
                (DYNAMIC_RANGE_INT8, tflite_int8.quantize_dynamic)]
    return [(STATIC_INT8, lambda b: onnx_int8.quantize_static(b, calib)),
            (DYNAMIC_RANGE_INT8, onnx_int8.quantize_dynamic)]


def _int8_count(data: bytes, fmt: int) -> int:
    if fmt == common_pb2.TFLITE:
        return tflite_int8.int8_tensors(data)
    return onnx_int8.int8_nodes(data)


class Exporter:
    """`export(arch, format, precision, batch_size, fp32=None) -> ExportResult`.

    `fp32` may carry the already exported float artifact of the same format and shape, so an int8
    request does not convert again.
    """

    def export(self, arch: ParsedArch, fmt: int, precision: int, batch_size: int,
               fp32: bytes | None = None) -> ExportResult:
        name = FORMAT_NAMES.get(fmt, str(fmt))
        try:
            return self._export(arch, fmt, precision, batch_size, fp32)
        except Exception as exc:
            error = classify(exc, f"{name} {PRECISION_NAMES.get(precision, '?')} export")
            log.info("export of %s as %s failed: %s", arch.canonical, name, error.message)
            raise error from exc

    def _export(self, arch: ParsedArch, fmt: int, precision: int, batch_size: int,
                fp32: bytes | None) -> ExportResult:
        if arch.space == "onnx":
            return as_uploaded(arch, fmt, precision)
        what = f"{FORMAT_NAMES[fmt]} {PRECISION_NAMES[precision]}"
        shape = (batch_size, *arch.input_shape)
        module = build_network(arch)
        calib, held_out = calibration.batches(shape)
        expected = parity.torch_outputs(module, held_out)
        if fp32 is None:
            fp32 = _fp32(module, fmt, shape)
        if precision == common_pb2.FP32:
            actual = parity.run_artifact(fp32, fmt, held_out)
            report = parity.check(expected, actual, precision, what)
            return ExportResult(fp32, fmt, precision, FP32, report)
        notes = []
        for kind, quantize in _quantizers(fmt, calib):
            try:
                data = quantize(fp32)
                if _int8_count(data, fmt) == 0:
                    # e.g. a degenerate NB201 cell that the TFLite converter folded to a constant.
                    raise ExportError(f"{what}: {kind} quantized nothing (the converted model has "
                                      "no quantizable op)")
                report = parity.check(expected, parity.run_artifact(data, fmt, held_out),
                                      precision, f"{what} ({kind})")
            except Exception as exc:
                error = classify(exc, f"{what} {kind}")
                notes.append(error.message)
                failure_kind = error.failure_kind
                continue
            note = "; ".join(notes)
            if note:
                log.info("%s of %s: fell back to %s: %s", what, arch.canonical, kind, note)
            return ExportResult(data, fmt, precision, kind, report, note)
        # Both failed: report the dynamic-range failure, with the static one for context.
        raise ExportError("; ".join(notes), failure_kind)


def as_uploaded(arch: ParsedArch, fmt: int, precision: int) -> ExportResult:
    """An uploaded ONNX model is the artifact, byte for byte: nothing to convert or compare."""
    what = f"{FORMAT_NAMES.get(fmt, fmt)} {PRECISION_NAMES.get(precision, precision)}"
    if fmt != common_pb2.ONNX or precision != common_pb2.FP32:
        raise ExportError(f"{what}: an uploaded ONNX model is measured as uploaded (onnx fp32); "
                          "converting it to other formats or precisions is not supported")
    return ExportResult(arch.payload.data, fmt, precision, FP32,
                        ParityReport(images=0, max_abs_diff=0.0, rel_error=0.0,
                                     top1_agreement=1.0), note="uploaded as is")
