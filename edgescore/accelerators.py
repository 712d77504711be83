"""Accelerator names shared by the server (validation, routing, workload keys) and the agent.

A job's `MeasurementSettings.execution_provider` picks an onnxruntime execution provider by a
short name ("cuda") or by onnxruntime's own name ("CUDAExecutionProvider"); its `delegate` picks
a LiteRT delegate. "" means the runtime's default: onnxruntime's CPU provider, LiteRT's built-in
XNNPACK. Agents list what they really have in RuntimeInfo (`execution_providers`: onnxruntime's
names, `delegates`: the short names below).
"""

from __future__ import annotations

# Short name -> onnxruntime's provider name.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "dml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
}
_BY_FULL_NAME = {full.lower(): short for short, full in PROVIDERS.items()}
CPU_PROVIDER = PROVIDERS["cpu"]
_SUFFIX = "executionprovider"

# LiteRT delegates: XNNPACK is built into the interpreter; the others are libraries loaded with
# load_delegate (the names tried per platform are in device_agent/tflite_runner.py).
DELEGATES = ("xnnpack", "gpu", "edgetpu")
DEFAULT_DELEGATE = "xnnpack"


def canonical_provider(name: str) -> str:
    """The short lower-case name of a provider ("" stays ""): "CUDAExecutionProvider" and
    "Cuda" are "cuda". A full name onnxruntime may know but this table does not
    ("FooExecutionProvider") is kept as given. ValueError for an unknown short name."""
    text = (name or "").strip()
    low = text.lower()
    if not low:
        return ""
    if low in PROVIDERS:
        return low
    if low in _BY_FULL_NAME:
        return _BY_FULL_NAME[low]
    if low.endswith(_SUFFIX) and len(low) > len(_SUFFIX):
        return text
    raise ValueError(f"unknown execution provider {text[:100]!r}: one of "
                     f"{', '.join(PROVIDERS)} or an onnxruntime '<Name>ExecutionProvider' name")


def provider_full_name(name: str) -> str:
    """onnxruntime's name of a provider; "" is the CPU provider (the default)."""
    short = canonical_provider(name)
    if not short:
        return CPU_PROVIDER
    return PROVIDERS.get(short, short)


def canonical_delegate(name: str) -> str:
    """The lower-case delegate name ("" stays ""); ValueError for an unknown one."""
    low = (name or "").strip().lower()
    if low and low not in DELEGATES:
        raise ValueError(f"unknown TFLite delegate {name[:100]!r}: one of {', '.join(DELEGATES)}")
    return low


def is_default_provider(name: str) -> bool:
    """"" and "cpu" run the same work: one workload, whatever the spelling."""
    return canonical_provider(name) in ("", "cpu")


def is_default_delegate(name: str) -> bool:
    return canonical_delegate(name) in ("", DEFAULT_DELEGATE)
