"""Timing a .tflite model with LiteRT (ai-edge-litert, else tflite-runtime), loaded from bytes.

XNNPACK: both packages apply their default delegate (XNNPACK on CPU) when the interpreter is built
with the BUILTIN op resolver, which is what OpResolverType.AUTO means; we pass it explicitly so a
future change of the default cannot silently time the slower reference kernels. The report says
"XNNPACK" only when the execution plan really holds a delegate node, "CPU" otherwise (ops XNNPACK
does not take run on the builtin kernels).

Other delegates (MeasurementSettings.delegate "gpu", "edgetpu") are libraries loaded with the
runtime's load_delegate: DELEGATE_LIBRARIES lists the names tried (EDGESCORE_TFLITE_<NAME>_DELEGATE
overrides with a path). A delegate that does not load fails the job as UNSUPPORTED_ACCELERATOR.
The Edge TPU runs only models compiled by edgetpu_compiler (full int8); others run on the CPU
with the delegate node absent, which the result shows (execution_provider "CPU").
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from edgescore.device_agent.protocol import effective_settings
from edgescore.device_agent.timing import (
    MeasurementAborted,
    UnsupportedAccelerator,
    finish_stats,
    reset_peak_rss,
    time_runs,
)
from edgescore.v1 import common_pb2

__all__ = ["MeasurementAborted", "available_delegates", "load_interpreter_module",
           "measure_tflite"]

INPUT_SEED = 0
# Libraries of the loadable delegates, by platform (the first that loads wins).
DELEGATE_LIBRARIES = {
    "edgetpu": {"linux": ["libedgetpu.so.1"], "darwin": ["libedgetpu.1.dylib"],
                "win32": ["edgetpu.dll"]},
    "gpu": {"linux": ["libtensorflowlite_gpu_delegate.so"],
            "darwin": ["libtensorflowlite_gpu_delegate.dylib"], "win32": []},
}


class UnsupportedDelegate(UnsupportedAccelerator):
    """The job's delegate library does not load here."""


def delegate_libraries(name: str) -> list[str]:
    override = os.environ.get(f"EDGESCORE_TFLITE_{name.upper()}_DELEGATE", "")
    found = [override] if override else []
    return found + DELEGATE_LIBRARIES.get(name, {}).get(sys.platform, [])


def load_delegate(module: Any, name: str) -> Any:
    """The loaded delegate object for `name` ("gpu", "edgetpu"); UnsupportedDelegate if none of
    its libraries loads."""
    loader = getattr(module, "load_delegate", None)
    errors = []
    for lib in delegate_libraries(name):
        if loader is None:
            break
        try:
            # dlopen first: load_delegate's object warns from __del__ when its library is absent.
            ctypes.CDLL(lib)
            return loader(lib)
        except Exception as exc:  # ValueError / OSError: library absent or no device
            errors.append(f"{lib}: {exc}")
    raise UnsupportedDelegate(f"TFLite delegate {name!r} does not load on this agent "
                              f"({'; '.join(errors) or 'no library to try'})")


def available_delegates(module: Any = None) -> list[str]:
    """Delegates this runtime really has: "xnnpack" (built in), then each loadable one whose
    library loads now (the Edge TPU's needs the device plugged in)."""
    found = ["xnnpack"]
    if module is None:
        try:
            module = load_interpreter_module()[0]
        except Exception:
            return found
    for name in DELEGATE_LIBRARIES:
        try:
            load_delegate(module, name)
        except UnsupportedDelegate:
            continue
        found.append(name)
    return found


def load_interpreter_module() -> tuple[Any, str, str]:
    """(interpreter module, runtime name, version): ai-edge-litert first, then tflite-runtime."""
    try:
        from ai_edge_litert import interpreter as module

        name, dist = "ai-edge-litert", "ai-edge-litert"
    except ImportError:
        # tflite-runtime 2.14 is the last build for many boards (needs numpy<2, no cp312 wheels).
        from tflite_runtime import interpreter as module  # type: ignore[no-redef]

        name, dist = "tflite-runtime", "tflite-runtime"
    try:
        from importlib import metadata

        version = metadata.version(dist)
    except Exception:
        version = str(getattr(module, "__version__", ""))
    return module, name, version


def _resolve_shape(detail: dict, requested: Sequence[int], batch: int) -> list[int]:
    """Shape to feed one input.

    A requested shape (the server's NCHW input_shape) is used as is unless, past the batch
    dimension, it is merely a permutation of the model's static dims (NCHW asked, NHWC exported):
    then the model's own layout is fed with the requested batch, since NCHW data would not fit an
    NHWC graph. Without a request, dynamic dims (-1 in shape_signature) become `batch` for dim 0
    and 1 elsewhere.
    """
    shape = [int(d) for d in detail["shape"]]
    signature = [int(d) for d in detail.get("shape_signature", shape)] or shape
    if requested:
        req = [int(d) for d in requested]
        inner_static = all(d > 0 for d in signature[1:])
        if req and len(req) == len(shape) and inner_static and sorted(req[1:]) == sorted(shape[1:]):
            return [req[0], *shape[1:]]
        return req
    return [d if d > 0 else (batch if i == 0 else 1) for i, d in enumerate(signature)]


def _random_input(rng: np.random.Generator, detail: dict, shape: list[int]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    scale, zero = detail.get("quantization", (0.0, 0))
    if scale:
        # A quantized activation (int8 / uint8): draw N(0,1) in real units and quantize it, so
        # values cover the typical range instead of saturating at the type's limits.
        info = np.iinfo(dtype)
        real = rng.standard_normal(shape)
        return np.clip(np.round(real / scale) + zero, info.min, info.max).astype(dtype)
    # Plain integer inputs are usually indices or masks: keep them tiny so they stay in range.
    return rng.integers(0, 2, size=shape).astype(dtype)


def _execution_provider(interpreter: Any, delegate: str = "xnnpack") -> str:
    try:
        ops = interpreter._get_ops_details()  # private but stable since TF 2.5; guarded
    except Exception:
        return "CPU"
    has_node = any(op.get("op_name") == "DELEGATE" for op in ops)
    return delegate.upper() if has_node else "CPU"


def measure_tflite(
    model_bytes: bytes,
    settings: common_pb2.MeasurementSettings,
    input_name: str = "",
    should_stop: Callable[[], bool] | None = None,
    between_runs: Callable[[], None] | None = None,
    *,
    artifact_sha256: str = "",
    meter=None,
) -> tuple[common_pb2.LatencyStats, dict]:
    """Time a .tflite flatbuffer and return (stats, info), same protocol as measure_onnx.

    threads → num_threads (0 = runtime default). Inputs are seeded random tensors of each input's
    own dtype; quantized int8/uint8 inputs are quantized from N(0,1). info holds runtime,
    runtime_version, execution_provider ("XNNPACK", "GPU", "EDGETPU" when a delegate node runs,
    else "CPU"), delegate, input_name and input_shape. settings.delegate "gpu" / "edgetpu" loads
    that delegate (UnsupportedDelegate when it does not load).
    LiteRT errors propagate; MeasurementAborted when should_stop() turns true.
    """
    module, runtime, version = load_interpreter_module()
    eff = effective_settings(settings)
    kwargs: dict = {"model_content": bytes(model_bytes)}
    if eff.threads > 0:
        kwargs["num_threads"] = int(eff.threads)
    resolver = getattr(module, "OpResolverType", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN  # see module docstring
    delegate = (eff.delegate or "xnnpack").lower()
    if delegate != "xnnpack":
        kwargs["experimental_delegates"] = [load_delegate(module, delegate)]

    reset_peak_rss()
    t0 = time.perf_counter()
    interpreter = module.Interpreter(**kwargs)
    inputs = interpreter.get_input_details()
    names = [d["name"] for d in inputs]
    primary = input_name or names[0]
    if primary not in names:
        # Converters often rename inputs ("serving_default_input:0"); a single input is unambiguous.
        if len(inputs) != 1:
            raise ValueError(f"input {primary!r} not in model inputs {names}")
        primary = names[0]
    batch = int(eff.batch_size) or 1
    shapes = {}
    for detail in inputs:
        requested = list(eff.input_shape) if detail["name"] == primary else []
        shape = _resolve_shape(detail, requested, batch)
        if shape != [int(d) for d in detail["shape"]]:
            interpreter.resize_tensor_input(detail["index"], shape, strict=False)
        shapes[detail["name"]] = shape
    interpreter.allocate_tensors()  # delegate (XNNPACK) is applied here: part of load time
    load_ms = (time.perf_counter() - t0) * 1000.0

    rng = np.random.default_rng(INPUT_SEED)
    for detail in interpreter.get_input_details():
        shape = shapes[detail["name"]]
        interpreter.set_tensor(detail["index"], _random_input(rng, detail, shape))

    # set_tensor copies into the interpreter's buffer, so the input is set once, like ORT's feeds.
    samples = time_runs(interpreter.invoke, eff, should_stop, between_runs, meter=meter)
    info = {
        "runtime": runtime,
        "runtime_version": version,
        "execution_provider": _execution_provider(interpreter, delegate),
        "delegate": delegate,
        "input_name": primary,
        "input_shape": shapes[primary],
    }
    return finish_stats(samples, load_ms), info
