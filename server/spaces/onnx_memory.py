"""Activation memory of an uploaded ONNX graph, estimated from its shapes before anything runs it.

A graph can be tiny and still ask for a huge tensor (an Expand to 160 GB has 162 parameters), so
the byte, node and parameter caps do not bound what a runtime allocates. Here every value's
static shape and element type come from onnx's shape inference (with data propagation, so a
shape computed by Shape/Concat/... is known too), at the graph's own batch size when it is
static and 1 when it is symbolic. The estimate is the peak of the tensors alive at once, walking
the nodes in their (topological) order: a value lives from the node that makes it to the last
node that reads it (graph inputs from the start, graph outputs to the end). Initializers are not
counted: the parameter cap bounds them.

What it does not see: values whose shape stays unknown (data-dependent shapes, If/Loop/Scan
bodies) count as zero. For those the runtimes are the guard: an out-of-memory failure there is
answered RESOURCE_EXHAUSTED too (`errors.reads_as_out_of_memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import onnx
from onnx import helper, shape_inference

from edgescore.server.errors import ResourceExhausted, shown

MB = 1024 * 1024
_KEPT_INITIALIZER_ELEMENTS = 1024


@dataclass(frozen=True)
class ActivationEstimate:
    peak_bytes: int
    largest_bytes: int
    largest_name: str


def _shapes_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its large initializers reduced to their type and dims (shape inference
    reads only those; the values it propagates are small shape tensors) and a symbolic batch set
    to 1: inference copies the model it is given, and an upload may be hundreds of MB."""
    light = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import)
    graph = light.graph
    for part in ("node", "input", "output", "value_info"):
        getattr(graph, part).extend(getattr(model.graph, part))
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) <= _KEPT_INITIALIZER_ELEMENTS:
            graph.initializer.append(tensor)
        else:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializers and dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    return light


def _nbytes(value: onnx.ValueInfoProto) -> Optional[int]:
    """Bytes of a tensor value whose shape and element type are static, else None."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape") or tensor.elem_type in (onnx.TensorProto.UNDEFINED,
                                                            onnx.TensorProto.STRING):
        return None
    count = 1
    for dim in tensor.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        count *= dim.dim_value
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    except Exception:  # noqa: BLE001 - an element type numpy has no dtype for
        return None
    return count * itemsize


def estimate(model: onnx.ModelProto) -> Optional[ActivationEstimate]:
    """The peak and the largest single tensor, in bytes; None when shape inference fails."""
    try:
        graph = shape_inference.infer_shapes(_shapes_only(model), data_prop=True).graph
    except Exception:  # noqa: BLE001 - InferenceError, or a C++ error on an odd graph
        return None
    initializers = {t.name for t in graph.initializer}
    sizes = {v.name: size for v in (*graph.input, *graph.value_info, *graph.output)
             if v.name not in initializers and (size := _nbytes(v)) is not None}
    last_read = {name: index for index, node in enumerate(graph.node) for name in node.input}
    for value in graph.output:
        last_read[value.name] = len(graph.node)
    live = sum(sizes.get(v.name, 0) for v in graph.input if v.name not in initializers)
    peak = live
    dying: dict[int, list[str]] = {}
    for name, index in last_read.items():
        dying.setdefault(index, []).append(name)
    for index, node in enumerate(graph.node):
        made = [name for name in node.output if name]
        live += sum(sizes.get(name, 0) for name in made)
        peak = max(peak, live)
        unread = [name for name in made if name not in last_read]
        live -= sum(sizes.get(name, 0) for name in (*dying.get(index, ()), *unread))
    largest = max(sizes, key=sizes.__getitem__, default="")
    return ActivationEstimate(peak, sizes.get(largest, 0), largest)


def check_activations(model: onnx.ModelProto, max_mb: int) -> None:
    """ResourceExhausted when the estimated activation memory is over `max_mb` MB."""
    found = estimate(model)
    if found is None or found.peak_bytes <= max_mb * MB:
        return
    raise ResourceExhausted(
        f"arch: activation memory {found.peak_bytes / MB:,.0f} MB (estimated from the graph's "
        f"shapes; largest tensor {shown(found.largest_name)}, "
        f"{found.largest_bytes / MB:,.0f} MB) exceeds the server's cap of {max_mb:,} MB")
