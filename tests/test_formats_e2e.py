"""End to end per format and precision: a real server and agent (subprocesses), the real client."""

from __future__ import annotations

import grpc
import pytest
from conftest import QUICK_MEASUREMENT

from edgescore.client import Client
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc

pytestmark = pytest.mark.slow

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def measure(stack, fmt: str, precision: str):
    with Client(stack.target) as client:
        result = client.score(ARCH, ["params"], ["local-cpu"],
                              measurement={**QUICK_MEASUREMENT, "format": fmt,
                                           "precision": precision})
    return result.latencies["local-cpu"]


def class_formats(stack, device_class: str) -> set[str]:
    """Formats the class's agents list (Client.devices() shows runtimes, not their formats)."""
    with grpc.insecure_channel(stack.target) as channel:
        response = fleet_pb2_grpc.FleetServiceStub(channel).ListDevices(
            fleet_pb2.ListDevicesRequest(), timeout=10)
    return {f for d in response.devices if d.device_class == device_class
            for r in d.runtimes for f in r.formats}


def test_onnx_int8_end_to_end(stack) -> None:
    lat = measure(stack, "onnx", "int8")
    assert lat.ok, lat.message
    assert lat.quantization == "static_int8"
    assert (lat.settings["format"], lat.settings["precision"]) == ("ONNX", "INT8")
    assert lat.runtime == "onnxruntime" and lat.n >= QUICK_MEASUREMENT["min_runs"]
    fp32 = measure(stack, "onnx", "fp32")
    assert fp32.ok and fp32.quantization == "fp32"
    assert fp32.artifact_sha256 != lat.artifact_sha256


@pytest.mark.parametrize(("precision", "quantization"), [("fp32", "fp32"), ("int8", "static_int8")])
def test_tflite_end_to_end(stack, precision: str, quantization: str) -> None:
    if "tflite" not in class_formats(stack, "local-cpu"):
        pytest.skip("the agent lists no runtime for tflite")
    lat = measure(stack, "tflite", precision)
    if lat.failure_kind == "UNSUPPORTED_FORMAT":
        pytest.skip(f"the agent advertises tflite but does not run it yet: {lat.message}")
    assert lat.ok, lat.message
    assert lat.quantization == quantization
    assert (lat.settings["format"], lat.settings["precision"]) == ("TFLITE", precision.upper())
    assert lat.n >= QUICK_MEASUREMENT["min_runs"] and lat.median_ms > 0
