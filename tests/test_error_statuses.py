"""Precise statuses for bad input, through a real server (and a real agent where one measures):
oversized names answer their own status with a short message, an upload a runtime refuses or
that runs out of memory is FAILED_PRECONDITION / RESOURCE_EXHAUSTED per item (never INTERNAL),
and an upload whose activations would not fit is refused before anything runs it."""

from __future__ import annotations

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import QUICK_MEASUREMENT
from onnx import TensorProto, helper, numpy_helper

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.client.requests import score_request
from edgescore.server.errors import MAX_MESSAGE_CHARS, InvalidArgument, ServerError, shown
from edgescore.server.fleet.outcomes import _code
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.limits import Limits
from edgescore.server.spaces.onnx_memory import estimate
from edgescore.v1 import common_pb2

CELL = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "skip_connect~2|")
HUGE = "x" * 100_000
ACTIVATION_CAP_MB = 64


def _tensor(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _model(nodes: list, initializers: list) -> onnx.ModelProto:
    """x (N, 3, 8, 8) → ... → y (N, 4); `nodes` end in "y"."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _dense(source: str, weight: str = "w") -> list:
    return [helper.make_node("Flatten", [source], ["f"]),
            helper.make_node("Gemm", ["f", weight], ["y"], transB=1)]


WEIGHT = _tensor("w", np.full((4, 192), 0.01, np.float32))
VALID = _model(_dense("x"), [WEIGHT])


def expand_bomb(batch: int) -> onnx.ModelProto:
    """x expanded to (batch, 3, 8, 8) and averaged back: 768 bytes a sample, 162 parameters."""
    shape = _tensor("shape", np.array([batch, 3, 8, 8], np.int64))
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[0], keepdims=1), *_dense("m")]
    return _model(nodes, [WEIGHT, shape])


def zero_dim() -> onnx.ModelProto:
    """A dense layer whose weight has a dim of 0: valid ONNX that the runtimes refuse."""
    return _model(_dense("x", "w0"), [_tensor("w0", np.zeros((4, 0), np.float32))])


def hidden_allocation(count: int) -> onnx.ModelProto:
    """A ConstantOfShape of `count` floats whose shape shape inference cannot see (Abs of a
    constant): the estimate passes it, the runtimes then fail to allocate it."""
    fill = helper.make_tensor("fill", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Abs", ["count"], ["n"]),
             helper.make_node("ConstantOfShape", ["n"], ["c"], value=fill),
             helper.make_node("ReduceMean", ["c"], ["m"], keepdims=0),
             helper.make_node("Mul", ["x", "m"], ["xm"]), *_dense("xm")]
    return _model(nodes, [WEIGHT, _tensor("count", np.array([count], np.int64))])


def _runtime_refuses(data: bytes) -> bool:
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        session.run(None, {"x": np.zeros((1, 3, 8, 8), np.float32)})
    except Exception:  # noqa: BLE001 - any refusal
        return True
    return False


def _allocations_can_fail() -> bool:
    """Whether a 320 GB allocation fails at once: not where the kernel always overcommits (mode
    1), where it would succeed and the first write would wake the out-of-memory killer."""
    try:
        with open("/proc/sys/vm/overcommit_memory") as mode:
            return mode.read().strip() != "1"
    except OSError:
        return False


def bit_flipped() -> bytes:
    """The first single-bit flip of VALID that the server accepts and onnxruntime refuses."""
    data = VALID.SerializeToString()
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            spaces.parse_arch("onnx", {"model": bytes(flipped), "input_name": ""}, 0, 0)
        except ServerError:
            continue
        if _runtime_refuses(bytes(flipped)):
            return bytes(flipped)
    raise AssertionError("no bit flip of the model is accepted and refused")


def test_bounded_messages_and_shown_values() -> None:
    error = InvalidArgument("arch.nb201", "bad " + "é" * 5000)
    assert len(error.message) <= MAX_MESSAGE_CHARS and error.message.endswith("[truncated]")
    assert len(error.message.encode()) <= 1500 and str(error) == error.message
    assert shown("abc") == "'abc'"
    assert shown(HUGE).endswith("... (100,000 characters)") and len(shown(HUGE)) < 140


def test_runtime_failures_map_to_precise_codes() -> None:
    refused = "Fail: [ONNXRuntimeError] : 1 : FAIL : Node () Op (Gemm) [ShapeInferenceError]"
    assert _code(common_pb2.RUNTIME_ERROR, refused) == grpc.StatusCode.FAILED_PRECONDITION
    for detail in ("Fail: ... BFCArena ... Failed to allocate memory for requested buffer",
                   "the measurement process (pid 7) was killed by SIGKILL (signal 9); the "
                   "kernel's out-of-memory killer sends it when memory runs out"):
        assert _code(common_pb2.RUNTIME_ERROR, detail) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _code(999, "") == grpc.StatusCode.INTERNAL


def test_activation_estimate_is_the_peak_of_tensors_alive_at_once() -> None:
    # Expand: x (768 B) and e alive together; then e and the mean; then the small dense tail.
    found = estimate(expand_bomb(1000))
    assert found is not None and found.largest_name == "e"
    assert found.largest_bytes == 1000 * 768
    assert found.peak_bytes == 768 + 1000 * 768
    assert estimate(expand_bomb(200_000_000)).peak_bytes == 153_600_000_768  # the 160 GB Expand
    assert Limits().max_activation_mb == 4096


@pytest.fixture(scope="module")
def stack():
    with LocalStack(agents={}, server_args=["--max-activation-mb", str(ACTIVATION_CAP_MB)]
                    ) as running:
        yield running


def _status(client, *args, **options) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(EdgescoreError) as err:
        client.score(*args, **options)
    return err.value.code, err.value.details


BAD_REQUESTS = {  # what: Client.score's arguments around the bad value
    "proxy name": lambda v: ((CELL, [v]), {}),
    "device class": lambda v: ((CELL, ["params"], [v]), {}),
    "dataset id": lambda v: ((CELL, ["naswot"]), {"dataset_id": v}),
    "spec": lambda v: ((v, ["params"]), {}),
}


@pytest.mark.parametrize("what", list(BAD_REQUESTS))
def test_oversized_values_answer_the_usual_status_with_a_short_message(stack, what) -> None:
    expected = {"proxy name": grpc.StatusCode.NOT_FOUND, "device class": grpc.StatusCode.NOT_FOUND,
                "dataset id": grpc.StatusCode.NOT_FOUND, "spec": grpc.StatusCode.INVALID_ARGUMENT}
    with stack.client() as client:
        for value in ("nosuch", HUGE):
            args, options = BAD_REQUESTS[what](value)
            code, message = _status(client, *args, **options)
            assert code == expected[what], (what, code, message[:200])
            assert len(message) <= MAX_MESSAGE_CHARS
            if value is HUGE and what != "spec":  # the grammar quotes a bad spec its own way
                assert "... (100,000 characters)" in message, message
        args, options = BAD_REQUESTS[what](HUGE)
        items = list(client.score_stream([score_request(*args, **options)]))
    assert len(items) == 1 and items[0].WhichOneof("outcome") == "error"
    assert items[0].error.code == expected[what].value[0]
    assert len(items[0].error.message) <= MAX_MESSAGE_CHARS


UNDECODABLE = b"\xff\xff\xff"  # field 31 with a wire type protobuf does not have


@pytest.mark.parametrize("method", ["/edgescore.v1.ScoringService/Score",
                                    "/edgescore.v1.ScoringService/ListProxies",
                                    "/edgescore.v1.FleetService/ListDevices"])
def test_bytes_that_are_no_request_message_answer_invalid_argument(stack, method) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(method)(UNDECODABLE, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "not a valid" in err.value.details()


def test_an_undecodable_item_of_a_request_stream_answers_invalid_argument(stack) -> None:
    good = score_request(CELL, ["params"]).SerializeToString()
    with grpc.insecure_channel(stack.target) as channel:
        call = channel.stream_stream("/edgescore.v1.ScoringService/ScoreStream")
        with pytest.raises(grpc.RpcError) as err:
            list(call(iter([good, UNDECODABLE]), timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "ScoreStream" in err.value.details()


def test_activation_cap_refuses_an_expand_bomb_before_anything_runs_it(stack) -> None:
    with stack.client() as client:
        code, message = _status(client, expand_bomb(200_000_000).SerializeToString(),
                                ["params"], space="onnx")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "activation memory 146,484 MB" in message and f"{ACTIVATION_CAP_MB} MB" in message
        assert shown("e") in message
        small = client.score(expand_bomb(1000).SerializeToString(), ["params"], space="onnx")
    assert small.proxies["params"].ok


@pytest.mark.slow
def test_uploads_a_runtime_refuses_or_cannot_allocate_are_per_item_statuses() -> None:
    cases = {  # upload → the status of its latency item and of synflow
        "dim of 0": (zero_dim().SerializeToString(), grpc.StatusCode.FAILED_PRECONDITION),
        "bit flip": (bit_flipped(), grpc.StatusCode.FAILED_PRECONDITION),
    }
    if _allocations_can_fail():
        cases["320 GB"] = (hidden_allocation(80_000_000_000).SerializeToString(),
                           grpc.StatusCode.RESOURCE_EXHAUSTED)
    with LocalStack(agents={"local-cpu": 1}) as running:
        running.wait_for_agents({"local-cpu": 1})
        with running.client(timeout=300) as client:
            results = {what: client.score(data, ["params", "synflow"], ["local-cpu"],
                                          space="onnx", measurement=QUICK_MEASUREMENT)
                       for what, (data, _) in cases.items()}
    for what, (_, code) in cases.items():
        result = results[what]
        latency, synflow = result.latencies["local-cpu"], result.proxies["synflow"]
        assert result.proxies["params"].ok, what
        assert (latency.code, latency.failure_kind) == (code, "RUNTIME_ERROR"), (what, latency)
        assert synflow.code == code, (what, synflow.message)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            assert "uploaded model" in synflow.message, synflow.message
