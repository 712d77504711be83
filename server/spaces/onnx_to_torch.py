"""An uploaded ONNX graph as a torch module (onnx2torch), with the graph's own weights.

onnx2torch reads a Conv's, Gemm's or BatchNormalization's weights straight from the graph's
initializers, by the name the node reads. The legacy torch exporter stores equal initializers
once (e.g. the zero conv biases that folding an untrained BatchNorm leaves, or equal freshly
initialised biases) and gives every other reader an Identity node's output instead: a name that
is not an initializer, on which the converter fails with a KeyError. Every reader is pointed back
at the initializer itself before converting (onnx2torch copies an initializer for each reader, so
no two modules share a tensor).

torch.fx keeps the generated source of every GraphModule it compiles, for tracebacks (30-60 KB
for a small converted network, once more for each copy a proxy takes): a worker that converts
upload after upload would grow without bound, so only the newest `FX_SOURCES_KEPT` are kept.
"""

from __future__ import annotations

import linecache
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import onnx
import torch.fx.graph_module
from torch import nn

from edgescore.server.errors import FailedPrecondition


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _rename_inputs(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    """Every node of `graph` and its subgraphs (which may read the outer scope's names)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]
        for sub in _subgraphs(node):
            _rename_inputs(sub, names)


def initializer_aliases(graph: onnx.GraphProto) -> dict[str, str]:
    """Identity outputs that stand for an initializer (through chains), each to that
    initializer's name."""
    aliases = {t.name: t.name for t in graph.initializer}
    for node in graph.node:  # topological order, so a chain resolves in one pass
        if node.op_type == "Identity" and node.input and node.input[0] in aliases:
            aliases[node.output[0]] = aliases[node.input[0]]
    return {alias: source for alias, source in aliases.items() if alias != source}


def without_initializer_aliases(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` itself when no node reads an initializer through an Identity; otherwise a copy
    whose nodes read the initializer by its own name, the Identity nodes gone (those whose
    output is also a graph output stay: that name must remain)."""
    aliases = initializer_aliases(model.graph)
    if not aliases:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    outputs = {o.name for o in graph.output}
    kept = [n for n in graph.node
            if not (n.op_type == "Identity" and n.output[0] in aliases
                    and n.output[0] not in outputs)]
    del graph.node[:]
    graph.node.extend(kept)
    _rename_inputs(graph, aliases)
    # An Identity kept for a graph output reads its initializer directly too.
    drop = set(aliases) - outputs
    kept_info = [v for v in graph.value_info if v.name not in drop]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return copy


def _torchvision_free() -> None:
    """onnx2torch imports torchvision for its NMS / RoIAlign converters only. A torchvision whose
    compiled ops do not match this torch build fails on import; the other converters must still
    work, so those two ops then report as unsupported."""
    if "torchvision.ops" in sys.modules and hasattr(sys.modules["torchvision.ops"], "nms"):
        return
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # noqa: BLE001 - RuntimeError from mismatched compiled ops, ImportError
        pass
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]

    def unsupported(*_args: Any, **_kw: Any) -> Any:
        raise FailedPrecondition("onnx: NonMaxSuppression / RoiAlign need torchvision, which "
                                 "this server cannot load")

    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = unsupported  # type: ignore[attr-defined]
    package.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})


FX_SOURCES_KEPT = 32


def forget_old_fx_sources() -> None:
    cache = getattr(getattr(torch.fx.graph_module, "_loader", None), "eval_cache", None)
    if not isinstance(cache, dict):  # a torch whose fx keeps them elsewhere
        return
    for key in list(cache)[:-FX_SOURCES_KEPT]:  # insertion order: the oldest first
        del cache[key]
        linecache.cache.pop(key, None)


_UNSUPPORTED = re.compile(r"operation_type='([^']+)'")


def convert(model: onnx.ModelProto) -> nn.Module:
    """The torch module of a checked upload; FAILED_PRECONDITION when onnx2torch cannot."""
    _torchvision_free()
    forget_old_fx_sources()
    from onnx2torch import convert as onnx_to_torch

    try:
        return onnx_to_torch(without_initializer_aliases(model))
    except NotImplementedError as exc:
        found = _UNSUPPORTED.search(str(exc))
        op = found.group(1) if found else str(exc)[:120]
        raise FailedPrecondition(f"onnx: the converter does not support op {op}") from None
    except Exception as exc:  # noqa: BLE001 - any converter failure is this model's, per proxy
        raise FailedPrecondition(f"onnx: could not convert the model to torch: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
