"""Tiny .tflite flatbuffers built in-process with LiteRT's schema (no TensorFlow needed).

One FULLY_CONNECTED layer, x[batch, 16] -> y[batch, 8], in float32 or quantized int8 / uint8, so
the agent's LiteRT runner can be tested without a converter.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TYPES = {
    "float32": schema.TensorType.FLOAT32,
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
}


def _buffer(array: np.ndarray | None = None) -> schema.BufferT:
    buf = schema.BufferT()
    if array is not None:
        buf.data = list(array.tobytes())
    return buf


def _tensor(name: str, shape: list[int], kind: int, buffer: int,
            quant: tuple[float, int] | None = None,
            signature: list[int] | None = None) -> schema.TensorT:
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name, shape, kind, buffer
    if signature is not None:
        t.shapeSignature = signature
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [quant[0]], [quant[1]]
        t.quantization = q
    return t


def fc_model(dtype: str = "float32", dynamic_batch: bool = False) -> bytes:
    """x[1, 16] -> FULLY_CONNECTED -> y[1, 8]; dynamic_batch marks dim 0 as -1."""
    rng = np.random.default_rng(1)
    kind = _TYPES[dtype]
    signature = [-1, 16] if dynamic_batch else None
    if dtype == "float32":
        weights = rng.standard_normal((8, 16)).astype(np.float32)
        bias = np.zeros(8, np.float32)
        qx = qw = qb = qy = None
        bias_kind = kind
    else:
        zero = 0 if dtype == "int8" else 128
        low, high = (-127, 128) if dtype == "int8" else (0, 256)
        weights = rng.integers(low, high, (8, 16)).astype(dtype)
        bias = np.zeros(8, np.int32)
        qx, qw, qb, qy = (0.05, zero), (0.01, zero), (0.0005, 0), (0.1, zero)
        bias_kind = schema.TensorType.INT32
    tensors = [
        _tensor("x", [1, 16], kind, 1, qx, signature),
        _tensor("w", [8, 16], kind, 2, qw),
        _tensor("b", [8], bias_kind, 3, qb),
        _tensor("y", [1, 8], kind, 4, qy, [-1, 8] if dynamic_batch else None),
    ]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1 if dtype != "int8" else 4
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [3], [op]
    graph.name = "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [_buffer(), _buffer(), _buffer(weights), _buffer(bias), _buffer()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
