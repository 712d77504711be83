"""Timing an ONNX model with onnxruntime, loaded from bytes, on the execution provider the job
names (MeasurementSettings.execution_provider; "" is the CPU provider).

The session is created with the requested provider first and the CPU provider after it, as
onnxruntime does anyway: nodes the accelerator cannot take run on the CPU. The result lists the
providers the session holds (session.get_providers()) and flags a fallback when the session lost
the requested provider or, by one profiled untimed run, when another provider ran a kernel.
TensorRT additionally gets an engine cache per artifact under the agent's work dir and its engine
build time (session creation plus the first run) reported apart from the timed runs. Only the CPU
provider was run on real hardware in this repository's tests; the CUDA / TensorRT paths are unit-
tested with a mocked session (docs/measurement.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Callable

import numpy as np
import onnxruntime as ort

from edgescore.accelerators import CPU_PROVIDER, PROVIDERS, provider_full_name
from edgescore.device_agent.protocol import effective_settings
from edgescore.device_agent.timing import (
    MeasurementAborted,
    UnsupportedAccelerator,
    finish_stats,
    reset_peak_rss,
    time_runs,
)
from edgescore.v1 import common_pb2

__all__ = ["MeasurementAborted", "UnsupportedAccelerator", "measure_onnx"]

PROVIDER = CPU_PROVIDER
INPUT_SEED = 0
TENSORRT = PROVIDERS["tensorrt"]
CUDA = PROVIDERS["cuda"]


def engine_cache_root() -> str:
    """Where TensorRT engines are cached: the agent's work dir (main.contain_writes points
    XDG_CACHE_HOME there), else ~/.cache/edgescore-agent."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                             "edgescore-agent")
    return os.path.join(base, "trt_engines")


def session_providers(requested: str, available: Sequence[str], artifact_sha256: str = "",
                      cache_root: str | None = None) -> list:
    """The providers argument of InferenceSession for the job's `requested` provider.

    [requested, CPU]; TensorRT gets CUDA between them (onnxruntime's documented order: nodes
    TensorRT rejects go to CUDA, then CPU) and its engine cache options: one cache folder per
    artifact sha256, so an engine is never reused for another network.
    UnsupportedAccelerator when `requested` is not among `available`.
    """
    full = provider_full_name(requested)
    if full not in available:
        raise UnsupportedAccelerator(
            f"execution provider {full} is not available in this agent's onnxruntime "
            f"(it has: {', '.join(available)})")
    if full == CPU_PROVIDER:
        return [CPU_PROVIDER]
    chain: list = [full]
    if full == TENSORRT:
        key = (artifact_sha256 or "unknown").lower()[:64]
        path = os.path.join(cache_root or engine_cache_root(), key)
        os.makedirs(path, exist_ok=True)
        chain = [(TENSORRT, {"trt_engine_cache_enable": True, "trt_engine_cache_path": path,
                             "trt_timing_cache_enable": True, "trt_timing_cache_path": path})]
        if CUDA in available:
            chain.append(CUDA)
    return [*chain, CPU_PROVIDER]


def provider_report(requested: str, used: Sequence[str],
                    nodes: dict[str, int] | None = None) -> tuple[str, bool]:
    """(the provider to report as execution_provider, fallback) from session.get_providers()
    and, when profiled, the kernels per provider. Fallback: the session lost the requested
    provider, or a kernel ran on another provider (without a profile: the session holds others
    after it, where onnxruntime places what the requested one cannot run)."""
    full = provider_full_name(requested)
    used = list(used)
    if full not in used:
        return (used[0] if used else ""), True
    if nodes:
        return full, any(n > 0 for p, n in nodes.items() if p != full)
    return full, len(used) > 1


def profile_nodes(path: str) -> dict[str, int]:
    """Kernels per provider in an onnxruntime profile (its "Node" events `<name>_kernel_time`,
    each with args.provider); {} when unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
    except (OSError, ValueError):
        return {}
    found: dict[str, set] = {}
    for e in events if isinstance(events, list) else []:
        if not isinstance(e, dict) or e.get("cat") != "Node":
            continue
        name, provider = str(e.get("name", "")), (e.get("args") or {}).get("provider")
        if provider and name.endswith("_kernel_time"):
            found.setdefault(str(provider), set()).add(name)
    return {p: len(names) for p, names in found.items()}

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


def _end_profiling(session) -> dict[str, int]:
    try:
        path = session.end_profiling()
    except Exception:  # noqa: BLE001 - a session without profiling: no node counts
        return {}
    if not isinstance(path, str) or not path:
        return {}
    try:
        return profile_nodes(path)
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


def measure_onnx(
    model_bytes: bytes,
    settings: common_pb2.MeasurementSettings,
    input_name: str = "",
    should_stop: Callable[[], bool] | None = None,
    between_runs: Callable[[], None] | None = None,
    *,
    artifact_sha256: str = "",
    meter=None,
) -> tuple[common_pb2.LatencyStats, dict]:
    """Time `model_bytes` with onnxruntime on the job's provider and return (stats, info).

    The protocol (warm-up, min/max runs and seconds, abort via should_stop) is
    timing.time_runs; zero settings take protocol.DEFAULTS. info holds runtime, runtime_version,
    execution_provider, execution_providers_used, provider_fallback, input_name and input_shape
    (the shape actually fed). `meter` (energy_meter.EnergyMeter) brackets the timed runs.
    onnxruntime errors propagate; UnsupportedAccelerator when the provider is not here;
    MeasurementAborted when should_stop() turns true.
    """
    eff = effective_settings(settings)

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers would flood the agent log
    if eff.threads > 0:
        opts.intra_op_num_threads = int(eff.threads)
    # One profiled run before the warm-up says which provider ran each kernel; profiling stops
    # with end_profiling(), before anything is timed. The file goes to TMPDIR (the work dir).
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.gettempdir(), "edgescore-ort-profile")

    requested = eff.execution_provider
    providers = session_providers(requested, ort.get_available_providers(), artifact_sha256)
    reset_peak_rss()
    t0 = time.perf_counter()
    session = ort.InferenceSession(bytes(model_bytes), sess_options=opts, providers=providers)
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

    # The profiled first run (untimed). TensorRT builds (or loads from its cache) the engine at
    # session creation and, for shapes only known at run time, on this first run: both are the
    # engine build, reported apart from the latency.
    t1 = time.perf_counter()
    session.run(None, feeds)
    first_run_ms = (time.perf_counter() - t1) * 1000.0
    nodes = _end_profiling(session)
    reported, fallback = provider_report(requested, session.get_providers(), nodes)
    engine_build_ms = load_ms + first_run_ms if reported == TENSORRT else 0.0

    samples = time_runs(lambda: session.run(None, feeds), eff, should_stop, between_runs,
                        meter=meter)
    info = {
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "execution_provider": reported,
        "execution_providers_used": list(session.get_providers()),
        "provider_fallback": fallback,
        "nodes_per_provider": nodes,
        "input_name": primary,
        "input_shape": used_shape,
    }
    stats = finish_stats(samples, load_ms)
    stats.engine_build_ms = engine_build_ms
    return stats, info
