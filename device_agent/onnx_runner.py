"""Timing an ONNX model with onnxruntime on the CPU, loaded from bytes (nothing touches disk)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Callable

import numpy as np
import onnxruntime as ort

from edgescore.v1 import common_pb2

from .protocol import effective_settings
from .stats import summarize

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


class MeasurementAborted(RuntimeError):
    """Raised when should_stop() turns true mid-measurement (server cancel or job timeout)."""


def _reset_peak_rss() -> None:
    # Writing "5" to clear_refs resets VmHWM (Linux >= 4.0), so the peak is this job's, not the
    # agent's lifetime peak. Not a file on disk; silently skipped where unsupported.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """Process peak resident set size: VmHWM, else getrusage (kB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return 0


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
) -> tuple[common_pb2.LatencyStats, dict]:
    """Time `model_bytes` and return (stats, info).

    Runs warmup_runs untimed, then timed runs until at least min_runs runs *and* min_seconds have
    elapsed, stopping once max_seconds of timed runs are exceeded (never fewer than one timed run).
    Zero settings take protocol.DEFAULTS. info holds runtime, runtime_version,
    execution_provider, input_name and input_shape (the shape actually fed). onnxruntime errors
    propagate; should_stop() is polled between runs and raises MeasurementAborted.
    """
    eff = effective_settings(settings)
    stop = should_stop or (lambda: False)

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers would flood the agent log
    if eff.threads > 0:
        opts.intra_op_num_threads = int(eff.threads)

    _reset_peak_rss()
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

    for _ in range(eff.warmup_runs):
        if stop():
            raise MeasurementAborted("stopped during warmup")
        session.run(None, feeds)

    samples: list[float] = []
    start = time.perf_counter()
    while True:
        if stop():
            raise MeasurementAborted(f"stopped after {len(samples)} timed runs")
        t_run = time.perf_counter()
        session.run(None, feeds)
        t_end = time.perf_counter()
        samples.append((t_end - t_run) * 1000.0)
        elapsed = t_end - start
        if elapsed >= eff.max_seconds:
            break
        if len(samples) >= eff.min_runs and elapsed >= eff.min_seconds:
            break

    stats = summarize(samples)
    stats.load_ms = load_ms
    stats.peak_rss_bytes = peak_rss_bytes()
    info = {
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "execution_provider": session.get_providers()[0],
        "input_name": primary,
        "input_shape": used_shape,
    }
    return stats, info
