"""Post-training int8 quantization of a float .tflite with ai-edge-quantizer (a litert-torch dep).

static_int8: full-integer model: int8 weights (per output channel, symmetric) and int8
    activations (per tensor, ranges from the calibration images); inputs and outputs stay float32
    (one QUANTIZE in, one DEQUANTIZE out), so agents feed every artifact the same float tensor.
dynamic_range_int8: int8 weights (per channel); activations are quantized on the fly at run time.
    Needs no calibration; used where static quantization fails.
"""

from __future__ import annotations

import threading

import numpy as np

_LOCK = threading.Lock()


def _signature(data: bytes) -> tuple[str, str]:
    """(signature key, input name) of a single-input model."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=data).get_signature_list()
    key, spec = next(iter(signatures.items()))
    return key, spec["inputs"][0]


def quantize_static(fp32: bytes, calibration: list[np.ndarray]) -> bytes:
    from ai_edge_quantizer import quantizer, recipe, recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    # A second scope ("^.*$" matches what ".*" does) so these rules add to the all-ops rule rather
    # than replace it: leave the graph input and output float.
    for op in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):
        manager.add_quantization_config("^.*$", op, None, "no_quantize")
    key, name = _signature(fp32)
    with _LOCK:
        q = quantizer.Quantizer(fp32, manager.get_quantization_recipe())
        ranges = q.calibrate({key: [{name: b} for b in calibration]})
        return bytes(q.quantize(ranges, enable_progress_report=False).quantized_model)


def quantize_dynamic(fp32: bytes) -> bytes:
    from ai_edge_quantizer import quantizer, recipe

    with _LOCK:
        q = quantizer.Quantizer(fp32, recipe.dynamic_wi8_afp32())
        return bytes(q.quantize(None, enable_progress_report=False).quantized_model)


def int8_tensors(data: bytes) -> int:
    """How many int8 tensors the model holds (0: the quantizer had nothing to quantize)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=data).get_tensor_details()
    return sum(1 for t in details if t["dtype"] == np.int8)
