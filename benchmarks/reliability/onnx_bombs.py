"""Crafted ONNX uploads: a Loop with a huge trip count, an Expand to a huge shape, a dimension
of 0, bit-flipped and truncated copies of a valid model, random bytes. Each must be answered
with a precise status (per item or per call); INTERNAL or UNKNOWN anywhere is a finding, and so
is server memory that grows past the bound below and stays (issue #14 points 3 and 7)."""

from __future__ import annotations

import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack
from edgescore.v1 import common_pb2, scoring_pb2

OWN_STACK = False
SIZES = {"short": 4, "full": 150}  # bit-flipped copies (and half as many truncated ones)
PROXIES = ["params", "flops", "synflow"]
RSS_GROWTH_MB = 500  # more than this after the uploads (and kept) is a finding
INPUT = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
LOGITS = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])


def _model(nodes: list, initializers: list, inputs: list | None = None) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs or [INPUT], [LOGITS], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _const(name: str, values: object, dtype: object = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _ten() -> onnx.TensorProto:
    """The shape the bombs broadcast their scalar to: ten logits."""
    return _const("ten", [1, 10], np.int64)


def valid() -> bytes:
    """Conv, global pool, linear: a small model every proxy scores."""
    rng = np.random.default_rng(0)
    return _model([helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["r"]),
                   helper.make_node("GlobalAveragePool", ["r"], ["p"]),
                   helper.make_node("Flatten", ["p"], ["f"]),
                   helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], transB=1)],
                  [_const("w", rng.normal(size=(4, 3, 3, 3))), _const("b", np.zeros(4)),
                   _const("fc", rng.normal(size=(10, 4))), _const("fb", np.zeros(10))])


def loop_bomb() -> bytes:
    """A Loop whose trip count is 2^62: one body pass is cheap, all of them never end."""
    body = helper.make_graph(
        [helper.make_node("Add", ["x_in", "one"], ["x_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1, 3, 32, 32])],
        [_const("one", 1.0)])
    return _model([helper.make_node("Loop", ["trips", "cond", "input"], ["looped"], body=body),
                   helper.make_node("ReduceMean", ["looped"], ["m"], keepdims=0),
                   helper.make_node("Expand", ["m", "ten"], ["logits"])],
                  [_const("trips", 2 ** 62, np.int64), _const("cond", True, np.bool_), _ten()])


def expand_bomb() -> bytes:
    """An Expand of the input to 1x3x200000x200000 floats (480 GB), then a mean: tiny graph."""
    return _model([helper.make_node("Expand", ["input", "shape"], ["big"]),
                   helper.make_node("ReduceMean", ["big"], ["m"], keepdims=0),
                   helper.make_node("Expand", ["m", "ten"], ["logits"])],
                  [_const("shape", [1, 3, 200_000, 200_000], np.int64), _ten()])


def zero_dim() -> bytes:
    """The valid model with an input of 0 rows."""
    model = onnx.load_from_string(valid())
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    return model.SerializeToString()


def cases(flips: int) -> dict[str, bytes]:
    rng, base = random.Random(11), valid()
    out = {"valid": base, "loop 2^62": loop_bomb(), "expand 480 GB": expand_bomb(),
           "dim of 0": zero_dim(), "random bytes": rng.randbytes(2048), "empty": b""}
    for n in range(flips):
        flipped = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out[f"bit flips #{n}"] = bytes(flipped)
    for n in range(max(1, flips // 2)):
        out[f"truncated #{n}"] = base[:rng.randrange(1, len(base))]
    return out


def run(size: str, s: LocalStack) -> runner.Result:
    flips = SIZES[size]
    result, tally, started = runner.begin(
        "onnx_bombs", f"{flips} bit-flipped + crafted ONNX uploads", s)
    internal: list[str] = []
    with runner.channel(s) as chan:
        stub = runner.Stubs.of(chan).scoring
        for name, data in cases(flips).items():
            request = scoring_pb2.ScoreRequest(
                arch=common_pb2.ArchSpec(onnx=common_pb2.OnnxModel(model=data)),
                proxies=[common_pb2.ProxyRequest(name=p) for p in PROXIES])
            reply = runner.timed(tally, f"Score ONNX {name.split(' #')[0]}",
                                 lambda r=request: stub.Score(r, timeout=120,
                                                              metadata=runner.AUTH))
            if reply is None:
                continue
            tally.result_items(reply)
            internal += [f"{name}: {p.name}: {p.status.message[:120]!r}" for p in reply.proxies
                         if p.status.code == 13]
            if name == "valid" and any(p.status.code for p in reply.proxies):
                result.findings.append(f"the valid control model failed: {reply.proxies}")
    runner.finish(result, s, tally, started)
    if internal:
        kinds = sorted({i.split(":")[0].split(" #")[0] for i in internal})
        result.findings.append(f"per-item INTERNAL on ONNX uploads ({', '.join(kinds)}); "
                               f"e.g. {internal[0]}")
    if result.rss_after_mb - result.rss_before_mb > RSS_GROWTH_MB:
        result.findings.append(f"server RSS grew {result.rss_before_mb:.0f} -> "
                               f"{result.rss_after_mb:.0f} MB over the uploads")
    return result
