"""The agent never hangs: each measurement runs in a child process under a wall-clock watchdog.

A graph whose `Loop` runs 10**12 times never returns from one `session.run`; the watchdog kills
its child (TIMEOUT), a cancel kills it at once, a child that dies is a RUNTIME_ERROR, and each
time the next job is measured by a fresh child. The server caps the run counts.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import onnx
import pytest
import torch
from conftest import QUICK_MEASUREMENT, onnx_bytes
from onnx import TensorProto, helper, numpy_helper
from tflite_models import fc_model
from torch import nn

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.device_agent import config, connection, isolation, limits, worker
from edgescore.device_agent.isolation import ProcessRunner
from edgescore.v1 import agent_pb2, agent_pb2_grpc, common_pb2

FAST = common_pb2.MeasurementSettings(warmup_runs=2, min_runs=10, min_seconds=0.01)
CAP_S = 2.0
CAPPED = worker.WorkerOptions(max_job_seconds=CAP_S)
# After the cap: the child's own stop gets STOP_GRACE_S, SIGTERM is immediate; a loaded CI box.
KILLED_WITHIN_S = CAP_S + isolation.STOP_GRACE_S + 3.0


def loop_model(trips: int) -> bytes:
    """input (1, 3, 8, 8) -> logits (1, 10), plus a Loop adding 1 to a counter `trips` times (no
    early exit) whose count is added to the logits, so the runtime cannot skip it."""
    body = helper.make_graph(
        [helper.make_node("Add", ["count_in", "one"], ["count_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "count",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("count_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("count_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    nodes = [helper.make_node("Loop", ["trips", "", "zero"], ["count"], body=body),
             helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["scores"]),
             helper.make_node("Add", ["scores", "count"], ["logits"])]
    graph = helper.make_graph(
        nodes, "hang",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(np.array(trips, np.int64), "trips"),
         numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
         numpy_helper.from_array(np.full((3, 10), 0.1, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


HUNG = loop_model(10**12)  # about 1 µs an iteration: two weeks for one run


def tiny_upload() -> bytes:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    return onnx_bytes(net, torch.zeros(1, 3, 8, 8))


TINY = tiny_upload()


def job(data: bytes, job_id: str = "job", settings: common_pb2.MeasurementSettings = FAST,
        fmt: int = common_pb2.ONNX, timeout: float = 60.0) -> agent_pb2.Job:
    art = agent_pb2.Artifact(sha256=hashlib.sha256(data).hexdigest(), data=data, format=fmt)
    return agent_pb2.Job(job_id=job_id, artifact=art, settings=settings, timeout_seconds=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def runner():
    r = ProcessRunner()
    yield r
    r.close()


# --- limits and settings (no processes) -------------------------------------------------------


def test_job_limit_is_the_smallest_of_timeout_budget_and_cap():
    default = job(TINY, settings=common_pb2.MeasurementSettings(), timeout=0)
    budget = limits.job_limit(default, 300.0, 900.0)
    assert budget.seconds == 60 + 3 * 30 + 10 and "max_seconds 30" in budget.reason
    assert limits.job_limit(job(TINY, timeout=120), 300.0, 900.0).reason == (
        "the job's timeout_seconds")
    capped = limits.job_limit(job(TINY, timeout=120), 300.0, 3.0)
    assert capped.seconds == 3.0 and "--max-job-seconds 3" in capped.describe()
    cool = common_pb2.MeasurementSettings(max_seconds=10, cooldown_below_celsius=50)
    assert limits.job_limit(job(TINY, settings=cool, timeout=0), 300.0, 900.0).seconds == 400
    huge = common_pb2.MeasurementSettings(max_seconds=float("inf"))
    assert limits.job_limit(job(TINY, settings=huge, timeout=0), 300.0, 900.0).seconds == 900


def test_exit_description_names_the_signal():
    assert isolation.exit_description(-9).startswith("was killed by SIGKILL (signal 9)")
    assert "out-of-memory" in isolation.exit_description(-9)
    assert "crashed" in isolation.exit_description(-11)
    assert isolation.exit_description(3) == "exited with code 3"


def test_max_job_seconds_setting(monkeypatch):
    monkeypatch.delenv("EDGESCORE_AGENT_MAX_JOB_SECONDS", raising=False)
    assert config.load_config([]).max_job_seconds == limits.DEFAULT_MAX_JOB_SECONDS == 900
    monkeypatch.setenv("EDGESCORE_AGENT_MAX_JOB_SECONDS", "42")
    assert config.load_config([]).max_job_seconds == 42.0
    assert config.load_config(["--max-job-seconds", "7.5"]).max_job_seconds == 7.5
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            config.load_config(["--max-job-seconds", bad])


# --- the child process -----------------------------------------------------------------------


@pytest.mark.slow
def test_hung_job_is_killed_at_the_cap_and_the_next_job_runs(runner):
    assert runner(job(TINY, "warm")).HasField("result")  # the child's start is not timed here
    pid = runner.child_pid
    t0 = time.monotonic()
    reply = runner(job(HUNG, "hung"), options=CAPPED)
    elapsed = time.monotonic() - t0
    assert reply.failure.kind == common_pb2.TIMEOUT, reply
    assert reply.failure.detail == (
        f"job exceeded 2 s, the agent's cap (--max-job-seconds 2); the measurement process "
        f"(pid {pid}) did not stop and was killed")
    assert CAP_S <= elapsed < KILLED_WITHIN_S, elapsed
    assert not alive(pid)
    ok = runner(job(TINY, "next"), options=CAPPED)
    assert ok.HasField("result"), ok
    assert ok.result.stats.n >= FAST.min_runs and ok.result.stats.peak_rss_bytes > 0
    assert runner.child_pid not in (None, pid)


@pytest.mark.slow
def test_child_that_dies_is_a_runtime_error_naming_the_signal(runner):
    assert runner(job(TINY, "warm")).HasField("result")  # a ready child
    pid = runner.child_pid
    replies: list = []
    caller = threading.Thread(target=lambda: replies.append(runner(job(HUNG, "doomed"))))
    caller.start()
    time.sleep(0.5)  # inside the Loop by now
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer sends
    caller.join(10)
    failure = replies[0].failure
    assert failure.kind == common_pb2.RUNTIME_ERROR, replies
    assert f"pid {pid}" in failure.detail and "SIGKILL" in failure.detail
    tflite = runner(job(fc_model(), "after", fmt=common_pb2.TFLITE))
    assert tflite.HasField("result") and tflite.result.runtime == "ai-edge-litert", tflite


@pytest.mark.slow
def test_own_timeout_between_runs_keeps_the_child(runner):
    assert runner(job(TINY, "warm")).HasField("result")
    pid = runner.child_pid
    endless = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=10_000, min_seconds=500,
                                             max_seconds=500)
    reply = runner(job(TINY, "slow", settings=endless, timeout=0.5))
    assert reply.failure.kind == common_pb2.TIMEOUT
    assert reply.failure.detail.startswith("job exceeded 0.5 s, the job's timeout_seconds (")
    assert runner.child_pid == pid and alive(pid)  # stopped by itself: nothing to kill


class CancellingService(agent_pb2_grpc.AgentServiceServicer):
    """Registers the agent, sends it a hung job, and cancels it once a heartbeat says busy."""

    def __init__(self) -> None:
        self.received: queue.Queue = queue.Queue()
        self.cancelled_at: float | None = None

    def Connect(self, request_iterator, context):
        next(request_iterator)  # Register
        yield agent_pb2.ServerMessage(registered=agent_pb2.Registered(
            agent_id="agent-1", heartbeat_interval_seconds=0.2))
        yield agent_pb2.ServerMessage(job=job(HUNG, "hung"))
        for msg in request_iterator:
            self.received.put(msg)
            if self.cancelled_at is None and msg.heartbeat.busy_job_id == "hung":
                self.cancelled_at = time.monotonic()
                yield agent_pb2.ServerMessage(cancel=agent_pb2.CancelJob(job_id="hung"))


@pytest.mark.slow
def test_cancel_from_the_server_kills_the_hung_child_promptly():
    service = CancellingService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    runner, stop = ProcessRunner(), threading.Event()
    assert runner(job(TINY, "warm")).HasField("result")  # started: the cancel finds it busy
    pid = runner.child_pid
    agent = connection.AgentConnection(f"127.0.0.1:{port}", "test-class", stop_event=stop,
                                       runner=runner)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        answer = None
        while answer is None:
            msg = service.received.get(timeout=30)
            answer = msg.failure if msg.WhichOneof("msg") == "failure" else None
        answered_after = time.monotonic() - service.cancelled_at
        assert answer.job_id == "hung" and answer.kind == common_pb2.FAILURE_KIND_UNSPECIFIED
        assert answer.detail == worker.CANCELLED_DETAIL
        assert answered_after < 3.0, answered_after
        assert not alive(pid)
    finally:
        stop.set()
        thread.join(10)
        server.stop(0)
        runner.close()


# --- end to end: a real server and agent ------------------------------------------------------


@pytest.mark.slow
def test_server_caps_run_counts_and_agent_times_out_a_hung_upload():
    with LocalStack(agents={}) as stack:
        stack.start_agent("watchdog-board", extra=["--max-job-seconds", str(CAP_S)])
        stack.wait_for_agents({"watchdog-board": 1})
        with stack.client(timeout=120) as client:
            for name, cap in (("warmup_runs", 1000), ("min_runs", 10000)):
                with pytest.raises(EdgescoreError) as info:
                    client.score(TINY, ["params"], ["watchdog-board"], space="onnx",
                                 measurement={**QUICK_MEASUREMENT, name: cap + 1})
                assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
                assert f"devices[0].settings.{name}: {cap + 1} exceeds the cap {cap}" in (
                    info.value.details)

            t0 = time.monotonic()
            hung = client.score(HUNG, ["params"], ["watchdog-board"], space="onnx",
                                measurement=QUICK_MEASUREMENT)
            elapsed = time.monotonic() - t0
            lat = hung.latencies["watchdog-board"]
            assert lat.code == grpc.StatusCode.DEADLINE_EXCEEDED, lat
            assert lat.failure_kind == "TIMEOUT" and "--max-job-seconds 2" in lat.message
            assert elapsed < KILLED_WITHIN_S + 5.0, elapsed  # + the server's own work

            ok = client.score(TINY, ["params"], ["watchdog-board"], space="onnx",
                              measurement=QUICK_MEASUREMENT).latencies["watchdog-board"]
            assert ok.ok and ok.provenance == "MEASURED", ok.message
            assert ok.n >= QUICK_MEASUREMENT["min_runs"]
