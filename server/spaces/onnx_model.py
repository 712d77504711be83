"""Any network uploaded as ONNX: measured as uploaded, scored on a torch module converted from it.

Checked before use, with nothing written anywhere: the bytes parse as a model, no tensor refers
to external data (a path would make the loader read the server's disk), every node is in the
standard domains, `onnx.checker` accepts the graph, and there is one image input (N, 3, H, H).
#Params (initializers, less BatchNormalization's running statistics, as torch counts them) and
FLOPs (Conv/Gemm/MatMul MACs after shape inference) come from the graph itself, so they work even
where the converter does not; every other proxy runs on onnx2torch's module, with the uploaded
weights, and an op it cannot convert fails those proxies with FAILED_PRECONDITION naming the op.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import numpy as np
import onnx
from onnx import TensorProto, shape_inference
from torch import nn

from edgescore.server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from edgescore.server.spaces.base import ParsedArch, SearchSpace
from edgescore.server.spaces.onnx_memory import check_activations
from edgescore.server.spaces.onnx_to_torch import convert

FIELD = "arch.onnx"
STANDARD_DOMAINS = ("", "ai.onnx")
MAX_CLASSES = 100_000


class OnnxPayload:
    def __init__(self, data: bytes, model: onnx.ModelProto, input_name: str) -> None:
        self.data, self.model, self.input_name = data, model, input_name


def _bad(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{FIELD}.{field}", message)


def _graphs(graph: onnx.GraphProto):
    """The graph and every subgraph (If / Loop / Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors


def _check_model(model: onnx.ModelProto) -> None:
    for graph in _graphs(model.graph):
        for tensor in _tensors(graph):
            if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
                raise _bad("model", f"tensor '{tensor.name[:60]}' refers to external data; "
                                    "upload a self-contained model")
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise _bad("model", f"node '{node.name[:60]}' ({node.op_type[:40]}) is in the "
                                    f"custom domain '{node.domain[:60]}'; only standard ONNX "
                                    "ops are accepted")
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise _bad("model", f"custom opset domain '{opset.domain[:60]}' is not accepted")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, or a C++ error for a malformed graph
        raise _bad("model", f"not a valid ONNX graph: {str(exc).splitlines()[0][:300]}") from None


def _dims(value_info: onnx.ValueInfoProto) -> list[Optional[int]]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _image_input(model: onnx.ModelProto, wanted: str) -> tuple[str, int]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if wanted:
        inputs = [i for i in inputs if i.name == wanted]
        if not inputs:
            raise _bad("input_name", f"the graph has no input '{wanted[:60]}'")
    if len(inputs) != 1:
        raise _bad("input_name" if wanted else "model",
                   f"expected one image input, the graph has {len(inputs)}; name one")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] != 3 or not dims[2] or dims[2] != dims[3]:
        raise _bad("model", f"input '{inputs[0].name[:60]}' has shape {dims}; expected "
                            "(N, 3, H, H) with static H")
    return inputs[0].name, int(dims[2])


def _num_classes(model: onnx.ModelProto) -> int:
    if len(model.graph.output) != 1:
        raise _bad("model", f"expected one output (logits), the graph has "
                            f"{len(model.graph.output)}")
    dims = _dims(model.graph.output[0])
    if len(dims) != 2 or not dims[1] or dims[1] > MAX_CLASSES:
        raise _bad("model", f"output shape {dims}; expected (N, classes)")
    return int(dims[1])


def trainable_params(model: onnx.ModelProto) -> int:
    """Elements of the weight tensors the graph's ops read, less BatchNormalization's running
    mean and variance (torch keeps those as buffers, not parameters), so an exported torch
    network counts as it did. Counted per name an op reads, through Identity nodes: exporters
    share one initializer among equal tensors (e.g. every BN's initial weight of ones)."""
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    for node in model.graph.node:  # in topological order, so chains resolve
        if node.op_type == "Identity" and node.input and node.input[0] in sizes:
            sizes[node.output[0]] = sizes[node.input[0]]
    read: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "Identity":
            continue
        inputs = list(node.input)
        if node.op_type == "BatchNormalization":
            inputs = inputs[:3]  # X, scale, B: mean and var (3, 4) are running statistics
        read.update(name for name in inputs if name in sizes)
    return sum(sizes[name] for name in read)


def macs(model: onnx.ModelProto) -> int:
    """Conv, Gemm and MatMul MACs for a batch of 1, from inferred shapes (as `flops` counts
    Conv2d and Linear in torch)."""
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    shapes = {v.name: _dims(v) for v in (*g.value_info, *g.input, *g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})

    def numel(dims: Optional[list]) -> int:
        if not dims:
            return 0
        return int(np.prod([1 if d is None else d for d in dims[1:]]))  # batch 1

    total = 0
    for node in g.node:
        out = shapes.get(node.output[0]) if node.output else None
        if node.op_type == "Conv":
            w = shapes.get(node.input[1]) or []
            if len(w) >= 3:
                total += numel(out) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0]) or []
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = (a[-2] if trans_a else a[-1]) if a else None
            if k and out:
                total += numel(out) * int(k)
    return total


class OnnxSpace(SearchSpace):
    name = "onnx"
    description = ("Any network uploaded as ONNX bytes: latency measured on it as is, proxies on "
                   "a torch module converted from it (onnx2torch) with its own weights")
    example = "(binary) an .onnx file: edgescore score --onnx model.onnx"
    fields = {
        "model": "ONNX bytes: one image input (N, 3, H, H), one (N, classes) output, standard "
                 "ops only, no external data",
        "input_name": "the image input's name; empty: the graph's only non-initializer input",
    }
    default_num_classes = 0     # read from the model
    default_input_resolution = 0
    network_variants = ("default",)
    networks_uploaded = True

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), (bytes, bytearray)):
            raise _bad("model", "expected the model's bytes")
        data, input_name = bytes(spec["model"]), spec.get("input_name") or ""
        if not data:
            raise _bad("model", "is empty")
        if not isinstance(input_name, str) or len(input_name) > 1000:
            raise _bad("input_name", "expected a short string")
        try:
            model = onnx.load_from_string(data)
        except Exception:  # noqa: BLE001 - DecodeError and friends: not a ModelProto
            raise _bad("model", "the bytes are not an ONNX model (protobuf decode failed)"
                       ) from None
        _check_model(model)
        name, resolution = _image_input(model, input_name)
        classes = _num_classes(model)
        for field, given, actual in (("num_classes", num_classes, classes),
                                     ("input_resolution", input_resolution, resolution)):
            if given and given != actual:
                raise InvalidArgument(f"arch.{field}", f"{given} does not match the model's "
                                                       f"{actual}")
        return ParsedArch(space=self.name, canonical=hashlib.sha256(data).hexdigest(),
                          num_classes=classes, input_resolution=resolution,
                          payload=OnnxPayload(data, model, name))

    def check_size(self, arch: ParsedArch, limits: Any) -> bool:
        """Bytes, graph nodes and parameters of the upload, counted from the graph itself, then
        its activation memory, estimated from the graph's shapes."""
        model = arch.payload.model
        nodes = sum(len(g.node) for g in _graphs(model.graph))
        for what, figure, cap in (("ONNX bytes", len(arch.payload.data), limits.max_onnx_bytes),
                                  ("graph nodes", nodes, limits.max_graph_nodes),
                                  ("parameter count", trainable_params(model),
                                   limits.max_params)):
            if figure > cap:
                raise ResourceExhausted(f"arch: {what} {figure:,} exceeds the server's cap "
                                        f"of {cap:,}")
        check_activations(model, limits.max_activation_mb)
        return True

    def static_proxy(self, arch: ParsedArch, proxy: str) -> Optional[float]:
        """#Params and FLOPs from the graph itself (they need no conversion); AZ-NAS's
        complexity is the same FLOPs count."""
        if proxy == "params":
            return float(trainable_params(arch.payload.model))
        if proxy in ("flops", "az_complexity"):
            return float(macs(arch.payload.model))
        return None

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        return convert(arch.payload.model)

    def build_exportable(self, arch: ParsedArch, network: nn.Module | None = None) -> nn.Module:
        raise FailedPrecondition("onnx: the uploaded model is measured as is, not re-exported")


SPACE = OnnxSpace()
