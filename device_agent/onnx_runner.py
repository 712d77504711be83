"""Timing an ONNX model with onnxruntime on the CPU, loaded from bytes (nothing touches disk)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Callable

import numpy as np
import onnxruntime as ort

from edgescore.device_agent.protocol import effective_settings
from edgescore.device_agent.timing import (
    MeasurementAborted,
    finish_stats,
    reset_peak_rss,
    time_runs,
)
from edgescore.v1 import common_pb2

__all__ = ["MeasurementAborted", "measure_onnx"]

PROVIDER = "CPUExecutionProvider"
INPUT_SEED = 0

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _shape_for(model_dims: Sequence[object], batch: int) -> list[int]:
    """Concrete shape from an ORT input shape: symbolic batch → batch, other symbolic dims → 1."""
    shape = []
    for i, dim in enumerate(model_dims):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        else:
            shape.append(batch if i == 0 else 1)
    return shape


def _random_input(rng: np.random.Generator, ort_type: str, shape: list[int]) -> np.ndarray:
    dtype = _DTYPES.get(ort_type, np.float32)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    # Integer / bool inputs are usually indices or masks: keep them tiny so they stay in range.
    return rng.integers(0, 2, size=shape).astype(dtype)


def measure_onnx(
    model_bytes: bytes,
    settings: common_pb2.MeasurementSettings,
    input_name: str = "",
    should_stop: Callable[[], bool] | None = None,
    between_runs: Callable[[], None] | None = None,
) -> tuple[common_pb2.LatencyStats, dict]:
    """Time `model_bytes` with onnxruntime's CPU provider and return (stats, info).

    The protocol (warm-up, min/max runs and seconds, abort via should_stop) is
    timing.time_runs; zero settings take protocol.DEFAULTS. info holds runtime, runtime_version,
    execution_provider, input_name and input_shape (the shape actually fed). onnxruntime errors
    propagate; MeasurementAborted when should_stop() turns true.
    """
    eff = effective_settings(settings)

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers would flood the agent log
    if eff.threads > 0:
        opts.intra_op_num_threads = int(eff.threads)

    reset_peak_rss()
    t0 = time.perf_counter()
    session = ort.InferenceSession(bytes(model_bytes), sess_options=opts, providers=[PROVIDER])
    load_ms = (time.perf_counter() - t0) * 1000.0

    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    primary = input_name or names[0]
    if primary not in names:
        raise ValueError(f"input {primary!r} not in model inputs {names}")
    batch = int(eff.batch_size) or 1
    rng = np.random.default_rng(INPUT_SEED)
    feeds = {}
    used_shape: list[int] = []
    for inp in inputs:
        if inp.name == primary and len(eff.input_shape) > 0:
            shape = [int(d) for d in eff.input_shape]
        else:
            shape = _shape_for(inp.shape, batch)
        if inp.name == primary:
            used_shape = shape
        feeds[inp.name] = _random_input(rng, inp.type, shape)

    samples = time_runs(lambda: session.run(None, feeds), eff, should_stop, between_runs)
    info = {
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "execution_provider": session.get_providers()[0],
        "input_name": primary,
        "input_shape": used_shape,
    }
    return finish_stats(samples, load_ms), info
