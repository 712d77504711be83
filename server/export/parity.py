"""Run an artifact with the runtime an agent would use and compare it with torch.

Tolerances (docs/measurement.md, "Formats and precisions"), on 64 held-out CIFAR-10 images:
  fp32  every logit within atol + rtol * max|torch logit| (1e-4, 1e-3): the same arithmetic in
        another order (measured <= 5e-7 of the largest logit); more is a conversion bug. Scaled
        by the largest logit: untrained NB201 networks with many skip sums reach logits of 1e6,
        where float32 rounding alone is ~1.
  int8  relative L2 error of the logits <= 0.5 and top-1 agreement >= 0.5. These networks carry
        random weights and untrained BatchNorm, so activations span orders of magnitude and int8
        is lossy: correct static int8 artifacts measured 0.003-0.41 relative error and >= 0.78
        top-1 agreement (dynamic-range: <= 0.02, >= 0.97). A sign, scale or layout error, or a
        dropped branch, gives ~1 or more, and scrambles the class ranking.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgescore.server.export.result import ExportError, ParityReport
from edgescore.v1 import common_pb2

FP32_ATOL = 1e-4
FP32_RTOL = 1e-3
INT8_MAX_REL_ERROR = 0.5
INT8_MIN_TOP1_AGREEMENT = 0.5


def torch_outputs(module: nn.Module, batches: list[np.ndarray]) -> np.ndarray:
    """Logits of `module` in eval mode; its training flags are restored afterwards.

    One forward over all batches together (eval mode: images are independent): 64 single-image
    calls took a minute on a loaded 2-core machine, where one call takes a fraction of a second.
    """
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            return module(torch.from_numpy(np.concatenate(batches))).numpy()
    finally:
        for m, training in modes.items():
            m.training = training


def onnx_outputs(data: bytes, batches: list[np.ndarray]) -> np.ndarray:
    import onnxruntime as ort  # the agents' runtime; imported where it is needed

    options = ort.SessionOptions()
    options.log_severity_level = 3  # QDQ models log a warning per node otherwise
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: b})[0] for b in batches])


def tflite_outputs(data: bytes, batches: list[np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for b in batches:
        interpreter.set_tensor(inp["index"], b.astype(inp["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(outputs)


def run_artifact(data: bytes, fmt: int, batches: list[np.ndarray]) -> np.ndarray:
    if fmt == common_pb2.TFLITE:
        return tflite_outputs(data, batches)
    return onnx_outputs(data, batches)


def compare(expected: np.ndarray, actual: np.ndarray) -> ParityReport:
    expected = expected.astype(np.float64)
    actual = actual.astype(np.float64).reshape(expected.shape)
    diff = actual - expected
    norm = float(np.linalg.norm(expected))
    rel = float(np.linalg.norm(diff)) / norm if norm > 0 else float(np.linalg.norm(diff))
    top1 = float(np.mean(actual.argmax(-1) == expected.argmax(-1))) if expected.size else 1.0
    return ParityReport(len(expected), float(np.abs(diff).max(initial=0.0)), rel, top1)


def check(expected: np.ndarray, actual: np.ndarray, precision: int, what: str) -> ParityReport:
    """The parity report, or ExportError(PARITY_FAILED) when past the precision's tolerance."""
    if actual.size != expected.size:
        raise ExportError(f"{what}: parity failed: output shape {actual.shape} != torch "
                          f"{expected.shape}", common_pb2.PARITY_FAILED)
    report = compare(expected, actual)
    finite = np.all(np.isfinite(actual))
    if precision == common_pb2.INT8:
        ok = (finite and report.rel_error <= INT8_MAX_REL_ERROR
              and report.top1_agreement >= INT8_MIN_TOP1_AGREEMENT)
        limits = (f"relative error {report.rel_error:.3g} (max {INT8_MAX_REL_ERROR}), top-1 "
                  f"agreement {report.top1_agreement:.3g} (min {INT8_MIN_TOP1_AGREEMENT})")
    else:
        bound = FP32_ATOL + FP32_RTOL * float(np.abs(expected).max(initial=0.0))
        ok = finite and report.max_abs_diff <= bound
        limits = (f"max abs diff {report.max_abs_diff:.3g} > {bound:.3g} (atol {FP32_ATOL:g} + "
                  f"rtol {FP32_RTOL:g} x largest logit)")
    if not ok:
        raise ExportError(f"{what}: parity failed on {report.images} images: {limits}",
                          common_pb2.PARITY_FAILED)
    return report
