"""What a latency depends on besides the network: the measurement settings that change the work
done (format, precision, batch size, threads, input shape, and the accelerator: onnxruntime
execution provider or TFLite delegate), not the protocol's run counts.

Latencies are only comparable within one workload: the predictor learns per workload and
latency percentiles rank within one, so a batch-64 INT8 median is never ranked against, or
predicted from, batch-1 FP32 ones.
"""

from __future__ import annotations

import json
from typing import Any, Union

from google.protobuf import json_format
from google.protobuf.message import Message

from edgescore.accelerators import (
    canonical_delegate,
    canonical_provider,
    is_default_delegate,
    is_default_provider,
)

# Field -> the value a settings dict without it means (stored settings omit zero values).
_FIELDS = {"format": "ONNX", "precision": "FP32", "batch_size": 1, "threads": 0,
           "input_shape": []}

Settings = Union[Message, dict, str, None]


def workload(settings: Settings) -> str:
    """One string per workload, from MeasurementSettings, its dict (proto field names, as
    stored) or that dict's JSON; None or {} is the default workload."""
    if isinstance(settings, Message):
        settings = json_format.MessageToDict(settings, preserving_proto_field_name=True)
    elif isinstance(settings, str):
        settings = json.loads(settings or "{}")
    values: dict[str, Any] = settings or {}
    picked = {name: values.get(name, default) or default for name, default in _FIELDS.items()}
    # The accelerator joins the key only when it is not the default ("" and "cpu" are one
    # workload, as are "" and "xnnpack"), so keys stored before it existed stay what they were
    # and a CUDA latency never answers, or trains, a CPU one.
    accelerator = _accelerator(values)
    if accelerator:
        picked["accelerator"] = accelerator
    return json.dumps(picked, sort_keys=True)


def _accelerator(values: dict[str, Any]) -> str:
    provider, delegate = values.get("execution_provider") or "", values.get("delegate") or ""
    try:
        if not is_default_provider(provider):
            return f"provider:{canonical_provider(provider)}"
        if not is_default_delegate(delegate):
            return f"delegate:{canonical_delegate(delegate)}"
    except ValueError:
        return f"provider:{provider}" if provider else f"delegate:{delegate}"
    return ""
