"""Fast unit tests of the device agent (no torch, no server package)."""

from __future__ import annotations

import hashlib
import math
import queue
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgescore import TOKEN_METADATA_KEY
from edgescore.device_agent import capabilities, connection, protocol, stats, thermal, worker
from edgescore.device_agent.main import main
from edgescore.device_agent.onnx_runner import measure_onnx
from edgescore.v1 import agent_pb2, agent_pb2_grpc, common_pb2


def tiny_model() -> bytes:
    """X[N,16] -> MatMul(W[16,8]) -> Relu, batch dimension symbolic."""
    w = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


MODEL = tiny_model()
FAST = common_pb2.MeasurementSettings(warmup_runs=2, min_runs=20, min_seconds=0.01)


def make_job(data: bytes = MODEL, sha: str | None = None, **kw) -> agent_pb2.Job:
    settings = kw.pop("settings", FAST)
    art = agent_pb2.Artifact(
        sha256=hashlib.sha256(data).hexdigest() if sha is None else sha, data=data, **kw
    )
    return agent_pb2.Job(job_id="job-1", artifact=art, settings=settings)


# --- stats / settings -----------------------------------------------------------------------


def test_summarize_matches_numpy():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.5]
    s = stats.summarize(samples)
    assert s.n == 7
    assert s.mean_ms == pytest.approx(np.mean(samples))
    assert s.median_ms == pytest.approx(4.0)
    assert s.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.std_ms == pytest.approx(np.std(samples, ddof=1))
    assert (s.min_ms, s.max_ms) == (1.0, 10.0)
    assert list(s.samples_ms) == samples


def test_summarize_single_and_empty():
    one = stats.summarize([2.5])
    assert (one.n, one.median_ms, one.p99_ms, one.std_ms) == (1, 2.5, 2.5, 0.0)
    assert stats.summarize([]).n == 0


def test_effective_settings_fills_only_zeros():
    eff = protocol.effective_settings(common_pb2.MeasurementSettings(min_runs=7, threads=2))
    assert (eff.warmup_runs, eff.min_runs, eff.min_seconds, eff.max_seconds) == (10, 7, 1.0, 30.0)
    assert eff.threads == 2


# --- measurement ----------------------------------------------------------------------------


def test_measure_onnx_runs_at_least_min_runs():
    settings = common_pb2.MeasurementSettings()
    settings.CopyFrom(FAST)
    settings.batch_size = 4
    result, info = measure_onnx(MODEL, settings)
    assert result.n >= 20 and len(result.samples_ms) == result.n
    assert result.min_ms > 0 and result.load_ms > 0 and result.peak_rss_bytes > 0
    assert info["execution_provider"] == "CPUExecutionProvider"
    assert info["input_shape"] == [4, 16]  # symbolic batch took batch_size


def test_measure_onnx_honours_max_seconds():
    settings = common_pb2.MeasurementSettings(
        warmup_runs=1, min_runs=10**9, min_seconds=100.0, max_seconds=0.3
    )
    t0 = time.perf_counter()
    result, _ = measure_onnx(MODEL, settings)
    assert time.perf_counter() - t0 < 1.5
    assert result.n >= 1


def test_measure_onnx_always_one_timed_run():
    settings = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=5, max_seconds=1e-9)
    result, _ = measure_onnx(MODEL, settings)
    assert result.n == 1


# --- jobs -----------------------------------------------------------------------------------


def test_run_job_result_echoes_settings():
    job = make_job(
        settings=common_pb2.MeasurementSettings(
            warmup_runs=1, min_runs=5, min_seconds=0.01, input_shape=[3, 16]
        )
    )
    msg = worker.run_job(job)
    assert msg.WhichOneof("msg") == "result", msg
    res = msg.result
    assert res.job_id == "job-1" and res.stats.n >= 5
    assert res.runtime == "onnxruntime" and res.execution_provider == "CPUExecutionProvider"
    assert list(res.settings.input_shape) == [3, 16] and res.settings.batch_size == 3
    assert res.settings.format == common_pb2.ONNX and res.settings.precision == common_pb2.FP32
    assert res.settings.max_seconds == 30.0  # default echoed
    assert res.env_before.cpu_freq_mhz >= 0


def test_run_job_wrong_sha_is_artifact_corrupt():
    msg = worker.run_job(make_job(sha="0" * 64))
    assert msg.failure.kind == common_pb2.ARTIFACT_CORRUPT and msg.failure.job_id == "job-1"


def test_run_job_unknown_format_is_unsupported_format():
    msg = worker.run_job(make_job(format=7))
    assert msg.failure.kind == common_pb2.UNSUPPORTED_FORMAT
    assert "ONNX and TFLITE" in msg.failure.detail


def test_run_job_garbage_model_is_runtime_error():
    msg = worker.run_job(make_job(data=b"definitely not an onnx model"))
    assert msg.failure.kind == common_pb2.RUNTIME_ERROR and msg.failure.detail


def test_run_job_cancel_and_timeout():
    cancel = threading.Event()
    cancel.set()
    msg = worker.run_job(make_job(), cancel)
    assert msg.failure.detail == worker.CANCELLED_DETAIL
    slow = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=10**9, min_seconds=60)
    job = make_job(settings=slow)
    job.timeout_seconds = 0.2
    t0 = time.perf_counter()
    assert worker.run_job(job).failure.kind == common_pb2.TIMEOUT
    assert time.perf_counter() - t0 < 2.0


# --- capabilities / env ---------------------------------------------------------------------


def test_capabilities():
    caps = capabilities.collect_capabilities("pi5", {"site": "lab"})
    assert caps.device_class == "pi5" and caps.tags["site"] == "lab"
    assert caps.cpu_cores >= 1 and caps.python and caps.machine and caps.agent_version
    ort = [r for r in caps.runtimes if r.name == "onnxruntime"]
    assert ort and "CPUExecutionProvider" in ort[0].execution_providers
    assert list(ort[0].formats) == ["onnx"]


def test_read_env_never_raises():
    env = thermal.read_env()
    assert isinstance(env, common_pb2.DeviceEnv)
    assert math.isnan(env.cpu_temp_celsius) or -50 < env.cpu_temp_celsius < 200


def test_cpu_temp_picks_cpu_zones(tmp_path):
    for name, kind, temp in [
        ("z0", "cpu-thermal", "45123"),
        ("z1", "gpu-thermal", "80000"),
        ("z2", "soc_thermal", "garbage"),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(temp + "\n")
    assert thermal.cpu_temp_celsius(str(tmp_path / "z*")) == pytest.approx(45.123)
    assert math.isnan(thermal.cpu_temp_celsius(str(tmp_path / "missing*")))


def test_is_throttled():
    assert thermal.is_throttled("throttled=0x4")
    assert not thermal.is_throttled("throttled=0x50000")  # only "since boot" bits
    assert not thermal.is_throttled("")


def test_agent_imports_no_torch_no_server():
    code = (
        "import edgescore.device_agent.main, sys; "
        "print('torch' in sys.modules, 'edgescore.server' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_backoff_delay():
    assert 0.4 <= connection.backoff_delay(0) <= 0.6
    assert 0.8 <= connection.backoff_delay(1) <= 1.2
    assert connection.backoff_delay(50) <= 36.0


# --- connection loop against a fake AgentService ----------------------------------------------


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    """Test double: checks the token, registers, sends its jobs, records what the agent sends."""

    def __init__(self, token: str | None = None, jobs=(), interval: float = 0.2) -> None:
        self.token, self.jobs, self.interval = token, list(jobs), interval
        self.received: queue.Queue = queue.Queue()

    def Connect(self, request_iterator, context):
        if self.token is not None:
            if dict(context.invocation_metadata()).get(TOKEN_METADATA_KEY) != self.token:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad fleet token")
        first = next(request_iterator)
        self.received.put(first)
        yield agent_pb2.ServerMessage(
            registered=agent_pb2.Registered(
                agent_id=first.register.agent_id or "agent-1",
                heartbeat_interval_seconds=self.interval,
            )
        )
        for job in self.jobs:
            yield agent_pb2.ServerMessage(job=job)
        for msg in request_iterator:
            self.received.put(msg)

    def wait_for(self, kind: str, timeout: float = 10.0) -> list[agent_pb2.AgentMessage]:
        """Messages received up to and including the first of `kind`."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.received.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(msg)
            if msg.WhichOneof("msg") == kind:
                return seen
        raise AssertionError(f"no {kind} within {timeout}s; got {seen}")


def serve(servicer, port: int = 0):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port


def start_agent(port: int, token: str | None = None):
    stop, rc = threading.Event(), []
    conn = connection.AgentConnection(
        f"127.0.0.1:{port}", "test-class", token=token, stop_event=stop
    )
    thread = threading.Thread(target=lambda: rc.append(conn.run()), daemon=True)
    thread.start()
    return stop, thread, rc


def test_connection_register_job_heartbeat_and_stop():
    settings = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=5, min_seconds=0.6)
    fake = FakeAgentService(token="s3cret", jobs=[make_job(settings=settings)])
    server, port = serve(fake)
    stop, thread, rc = start_agent(port, token="s3cret")
    try:
        first = fake.wait_for("register")[0]
        assert first.register.capabilities.device_class == "test-class"
        seen = fake.wait_for("result")
        assert seen[-1].result.job_id == "job-1" and seen[-1].result.stats.n >= 5
        # The job takes >= 0.6 s with a 0.2 s heartbeat: heartbeats kept flowing, marked busy.
        assert any(m.heartbeat.busy_job_id == "job-1" for m in seen[:-1])
        fake.wait_for("heartbeat")
    finally:
        stop.set()
        thread.join(5)
        server.stop(0)
    assert not thread.is_alive() and rc == [protocol.EXIT_OK]


def test_connection_reconnects_with_same_agent_id():
    first_fake = FakeAgentService()
    server, port = serve(first_fake)
    stop, thread, _ = start_agent(port)
    try:
        assert first_fake.wait_for("register")[0].register.agent_id == ""
        first_fake.wait_for("heartbeat")  # sent only once the agent has processed Registered
        server.stop(0).wait()
        second_fake = FakeAgentService()
        server, _ = serve(second_fake, port)
        again = second_fake.wait_for("register")[0]
        assert again.register.agent_id == "agent-1"
    finally:
        stop.set()
        thread.join(5)
        server.stop(0)
    assert not thread.is_alive()


def test_wrong_token_exits_non_zero(tmp_path):
    server, port = serve(FakeAgentService(token="right"))
    try:
        t0 = time.monotonic()
        rc = main(["--server", f"127.0.0.1:{port}", "--token", "wrong", "--log-level", "ERROR",
                   "--work-dir", str(tmp_path)])
        assert rc == protocol.EXIT_UNAUTHENTICATED != 0
        assert time.monotonic() - t0 < 5.0
    finally:
        server.stop(0)
