"""What a latency depends on besides the network: the measurement settings that change the work
done (format, precision, batch size, threads, input shape), not the protocol's run counts.

Latencies are only comparable within one workload: the predictor learns per workload and
latency percentiles rank within one, so a batch-64 INT8 median is never ranked against, or
predicted from, batch-1 FP32 ones.
"""

from __future__ import annotations

import json
from typing import Any, Union

from google.protobuf import json_format
from google.protobuf.message import Message

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
    return json.dumps(picked, sort_keys=True)
