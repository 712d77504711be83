"""Post-training int8 quantization of a float ONNX model with onnxruntime.quantization.

static_int8: QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantized op, which
    onnxruntime fuses into integer kernels), int8 weights per output channel, uint8 activations
    with MinMax ranges from the calibration images. U8S8 because onnxruntime's CPU provider fuses
    every NB201 Conv and Add with it (QLinearConv, QLinearAdd); with S8S8 activations 31 of 52
    convs stayed float on x86-64, so the artifact would not time an int8 model.
dynamic_range_int8: int8 weights per channel, activations quantized at run time
    (ConvInteger / MatMulInteger); no calibration, used where static quantization fails.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx

# Ops whose presence shows a model really is quantized.
_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
             "MatMulInteger", "QLinearConv", "QLinearMatMul"}


def _reader(calibration: list[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def _inline_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace `Identity(initializer)` nodes by a copy of the initializer under the output name.

    The legacy exporter shares equal constants (e.g. the folded conv biases) through Identity
    nodes. The quantizer only quantizes a bias that is an initializer; with a float bias
    onnxruntime cannot fuse the QDQ Conv into QLinearConv and runs it in float, so the "int8"
    model would time float convs. Found on NB201: 3 of 52 convs fused before this, 52 after.
    """
    inits = {i.name: i for i in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def _quantize(fn, fp32: bytes, **kwargs) -> bytes:
    # The quantizer writes its result (and calibration scratch models) to files only.
    with tempfile.TemporaryDirectory(prefix="edgescore-q-") as tmp:
        out = os.path.join(tmp, "model.int8.onnx")
        fn(_inline_identities(onnx.load_from_string(fp32)), out, **kwargs)
        model = onnx.load(out)
    # Re-serialising drops nothing but fixes field order, as for the fp32 export.
    return model.SerializeToString()


def quantize_static(fp32: bytes, calibration: list[np.ndarray], input_name: str = "input") -> bytes:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    return _quantize(
        quantize_static, fp32,
        calibration_data_reader=_reader(calibration, input_name),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibration_providers=["CPUExecutionProvider"],
    )


def quantize_dynamic(fp32: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    return _quantize(quantize_dynamic, fp32, per_channel=True, weight_type=QuantType.QInt8)


def int8_nodes(data: bytes) -> int:
    """How many quantization / integer nodes the model has (0: nothing was quantized)."""
    graph = onnx.load_from_string(data).graph
    return sum(1 for node in graph.node if node.op_type in _INT8_OPS)
