"""What an export hands to the latency service: the artifact, how it was made, how close it is.

An `ExportError` carries the failure kind the latency item reports (EXPORT_FAILED, UNSUPPORTED_OP
or PARITY_FAILED); all three answer FAILED_PRECONDITION, as the v1 error model says for a valid
input the server cannot handle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgescore.server.errors import FailedPrecondition
from edgescore.v1 import common_pb2

# Quantization kinds an artifact can have (also what LatencyResult.quantization says).
FP32 = "fp32"
STATIC_INT8 = "static_int8"
DYNAMIC_RANGE_INT8 = "dynamic_range_int8"

FORMAT_NAMES = {common_pb2.ONNX: "onnx", common_pb2.TFLITE: "tflite"}
PRECISION_NAMES = {common_pb2.FP32: "fp32", common_pb2.INT8: "int8"}


class ExportError(FailedPrecondition):
    """An artifact could not be produced, or failed its parity check."""

    def __init__(self, message: str, failure_kind: int = common_pb2.EXPORT_FAILED) -> None:
        super().__init__(message)
        self.failure_kind = failure_kind


@dataclass(frozen=True)
class ParityReport:
    """Artifact vs torch on held-out calibration images (see docs/measurement.md)."""

    images: int
    max_abs_diff: float
    rel_error: float        # ||artifact - torch||_2 / ||torch||_2 over all logits
    top1_agreement: float   # fraction of images whose argmax class matches


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    format: int             # common_pb2.ArtifactFormat
    precision: int          # common_pb2.Precision
    quantization: str       # FP32, STATIC_INT8 or DYNAMIC_RANGE_INT8
    parity: ParityReport
    note: str = ""          # why a fallback was taken, for the server log

    @property
    def parity_max_abs_diff(self) -> float:
        return self.parity.max_abs_diff


# Converter messages that mean "this op has no lowering", and the op they name.
_UNSUPPORTED_PATTERNS = (
    re.compile(r"Lowering not found: (\S+)"),                        # litert-torch
    re.compile(r"failed to legalize operation '([^']+)'"),           # MLIR / TFLite converter
    re.compile(r"Exporting the operator '([^']+)' to ONNX"),         # torch.onnx (legacy)
)


def classify(exc: BaseException, what: str) -> ExportError:
    """Turn any converter exception into an ExportError, UNSUPPORTED_OP where an op is named."""
    if isinstance(exc, ExportError):
        return exc
    text = str(exc)
    for pattern in _UNSUPPORTED_PATTERNS:
        match = pattern.search(text)
        if match:
            op = next((g for g in match.groups() if g), match.group(0))
            return ExportError(f"{what}: unsupported op {op}", common_pb2.UNSUPPORTED_OP)
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ExportError(f"{what} failed: {type(exc).__name__}: {first_line[:300]}")
