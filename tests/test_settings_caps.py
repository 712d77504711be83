"""Every measurement setting is capped twice: by the server (INVALID_ARGUMENT naming the field and
the cap) and by the agent, which owns its board and refuses a job over its own caps before any
runtime starts (a per-item FAILED_PRECONDITION naming the setting and the cap)."""

from __future__ import annotations

import hashlib
import math

import grpc
import pytest
import torch
from conftest import QUICK_MEASUREMENT, onnx_bytes
from torch import nn

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.device_agent import config, limits
from edgescore.device_agent.isolation import ProcessRunner
from edgescore.device_agent.worker import WorkerOptions
from edgescore.v1 import agent_pb2, common_pb2


def _tiny() -> bytes:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    return onnx_bytes(net, torch.randn(1, 3, 8, 8))


TINY = _tiny()
Settings = common_pb2.MeasurementSettings


@pytest.mark.parametrize(("settings", "named"), [
    (Settings(threads=9), "settings.threads = 9 exceeds this agent's cap 8 (--max-threads)"),
    (Settings(warmup_runs=1001), "settings.warmup_runs = 1001 exceeds this agent's cap 1000"),
    (Settings(min_runs=10**9), "settings.min_runs = 1000000000 exceeds this agent's cap 10000"),
    (Settings(min_seconds=61), "settings.min_seconds = 61 exceeds this agent's cap 60 "
                               "(--max-job-seconds)"),
    (Settings(batch_size=1025), "settings.batch_size = 1025 exceeds this agent's cap 1024"),
    (Settings(max_seconds=math.inf), "settings.max_seconds = inf: must be a finite number"),
    (Settings(cooldown_below_celsius=math.nan), "settings.cooldown_below_celsius = nan"),
    (Settings(input_shape=[1024, 3, 1024, 1024]), "has 3221225472 elements, over this agent's"),
])
def test_agent_refuses_settings_over_its_caps(settings, named):
    assert named in limits.settings_refusal(settings, max_threads=8, max_job_seconds=60.0)


def test_agent_accepts_settings_within_its_caps():
    # max_seconds over --max-job-seconds is fine: the watchdog ends the job at the cap anyway.
    ok = Settings(threads=8, warmup_runs=1000, min_runs=10_000, min_seconds=60, max_seconds=600,
                  batch_size=1024, input_shape=[1, 3, 224, 224], cooldown_below_celsius=60)
    assert limits.settings_refusal(ok, max_threads=8, max_job_seconds=60.0) is None
    default = limits.default_max_threads()
    assert limits.settings_refusal(Settings(threads=default), 0, 60.0) is None
    assert "--max-threads" in limits.settings_refusal(Settings(threads=default + 1), 0, 60.0)


def test_refused_job_never_starts_a_measurement_process():
    runner = ProcessRunner()
    try:
        art = agent_pb2.Artifact(sha256=hashlib.sha256(TINY).hexdigest(), data=TINY)
        reply = runner(agent_pb2.Job(job_id="many", artifact=art, settings=Settings(threads=10**6)),
                       options=WorkerOptions(max_threads=4))
        assert reply.failure.kind == common_pb2.UNSUPPORTED_FORMAT
        assert "settings.threads = 1000000 exceeds this agent's cap 4" in reply.failure.detail
        assert runner.child_pid is None
    finally:
        runner.close()


def test_max_threads_flag_is_checked():
    assert config.load_config(["--max-threads", "3"]).max_threads == 3
    with pytest.raises(SystemExit):
        config.load_config(["--max-threads", "-1"])


@pytest.mark.slow
def test_server_and_agent_caps_through_real_processes():
    with LocalStack(agents={}) as stack:
        stack.start_agent("capped-board", extra=["--max-threads", "2", "--max-job-seconds", "5"])
        stack.wait_for_agents({"capped-board": 1})
        with stack.client(timeout=120) as client:
            def score(**settings: float) -> object:
                return client.score(TINY, ["params"], ["capped-board"], space="onnx",
                                    measurement={**QUICK_MEASUREMENT, **settings})

            for name, value, cap in (("threads", 10**6, "256"), ("threads", 257, "256"),
                                     ("max_seconds", 601.0, "600"), ("min_seconds", 601.0, "600"),
                                     ("batch_size", 1025, "1024"),
                                     ("cooldown_below_celsius", 151.0, "150")):
                with pytest.raises(EdgescoreError) as info:
                    score(**{name: value})
                assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, (name, info.value)
                assert f"devices[0].settings.{name}: " in info.value.details
                assert f"exceeds the cap {cap}" in info.value.details

            # Within the server's caps, over the agent's: refused before any runtime starts.
            for settings, named in (({"threads": 3}, "settings.threads = 3 exceeds this agent's "
                                     "cap 2 (--max-threads)"),
                                    ({"min_seconds": 6.0}, "settings.min_seconds = 6 exceeds "
                                     "this agent's cap 5 (--max-job-seconds)")):
                lat = score(**settings).latencies["capped-board"]
                assert lat.code == grpc.StatusCode.FAILED_PRECONDITION, lat
                assert named in lat.message

            ok = score(threads=2).latencies["capped-board"]
            assert ok.ok and ok.provenance == "MEASURED", ok.message
