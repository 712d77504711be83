"""Agent integration: real server and agents (subprocesses on loopback) over TLS, mutual TLS,
an agent killed mid-job, and an agent that writes nothing outside its work folder."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import QUICK_MEASUREMENT
from tls_certs import make_tls_files

from edgescore.client import Client, EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc

pytestmark = pytest.mark.slow

ARCH = ("|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|"
        "+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|")


def measure(stack: LocalStack, device_class: str, settings: dict | None = None):
    with stack.client() as client:
        result = client.score(ARCH, ["params"], [device_class],
                              measurement=settings or QUICK_MEASUREMENT)
    latency = result.latencies[device_class]
    assert latency.ok and latency.provenance == "MEASURED", latency.message
    return latency


def classes(stack: LocalStack) -> set[str]:
    with stack.client(timeout=5) as client:
        return {d.device_class for d in client.devices()}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_tls_agent_measures_plain_text_is_refused_and_nothing_written_outside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls_files(tmp_path)
    with LocalStack(agents={"tls-board": 1}, tls=tls) as stack:
        plain = stack.start_agent("plain-board", tls=False)
        # A second TLS agent in a sandbox: fake HOME, TMPDIR and working directory, default
        # work dir (~/.cache/edgescore-agent). After a job, only that empty folder may exist.
        sandbox = {name: tmp_path / name for name in ("home", "tmp", "cwd")}
        for folder in sandbox.values():
            folder.mkdir()
        monkeypatch.setenv("HOME", str(sandbox["home"]))
        monkeypatch.setenv("TMPDIR", str(sandbox["tmp"]))
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.chdir(sandbox["cwd"])
        stack.start_agent("sandboxed", extra=["--metrics-port", "0",
                                              "--metrics-address", "127.0.0.1"])
        monkeypatch.undo()
        stack.wait_for_agents({"sandboxed": 1})

        latency = measure(stack, "tls-board")
        assert latency.n >= QUICK_MEASUREMENT["min_runs"]
        assert measure(stack, "sandboxed").agent_id.startswith("sandboxed")
        port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/",
                         stack.read_log("agent-sandboxed-2.log")).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            scraped = reply.read().decode().splitlines()
        assert 'edgescore_agent_jobs_total{outcome="ok"} 1.0' in scraped
        assert "edgescore_agent_connected 1.0" in scraped

        with pytest.raises(EdgescoreError) as info:
            Client(stack.target, timeout=5).devices()  # a plain-text client is refused too
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "plain-board" not in classes(stack)
        assert plain.poll() is None  # still retrying, never registered
        assert "UNAVAILABLE" in stack.read_log("agent-plain-board-1.log")
        assert files_under(sandbox["home"]) == [".cache", ".cache/edgescore-agent"]
        assert files_under(sandbox["tmp"]) == [] and files_under(sandbox["cwd"]) == []


def test_mutual_tls_refuses_agent_without_client_cert(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path, mutual=True)
    with LocalStack(agents={"mtls-board": 1}, tls=tls) as stack:
        nocert = stack.start_agent("nocert-board", tls=False, extra=["--tls-ca", tls.ca])
        assert measure(stack, "mtls-board").agent_id.startswith("mtls-board")
        with pytest.raises(EdgescoreError) as info:
            Client(stack.target, timeout=5, tls_ca=tls.ca).devices()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "nocert-board" not in classes(stack)
        assert nocert.poll() is None
        assert "UNAVAILABLE" in stack.read_log("agent-nocert-board-1.log")


def _agents(stack: LocalStack, device_class: str) -> list[fleet_pb2.AgentInfo]:
    with grpc.insecure_channel(stack.target) as channel:
        reply = fleet_pb2_grpc.FleetServiceStub(channel).ListDevices(
            fleet_pb2.ListDevicesRequest(), timeout=5)
    return [a for d in reply.devices if d.device_class == device_class for a in d.agents]


def _done(stack: LocalStack, device_class: str) -> int:
    with stack.client(timeout=5) as client:
        return {d.device_class: d.measurements_done for d in client.devices()}[device_class]


def test_agent_killed_mid_job_is_replaced_by_survivor() -> None:
    with LocalStack(agents={}) as stack:
        first = stack.start_agent("pair")
        stack.wait_for_agents({"pair": 1})
        second = stack.start_agent("pair")  # connects later: the fleet gives jobs to `first`
        stack.wait_for_agents({"pair": 2})
        before = _done(stack, "pair")
        long = {**QUICK_MEASUREMENT, "min_seconds": 5.0, "max_seconds": 30.0}
        outcome: list = []
        caller = threading.Thread(target=lambda: outcome.append(measure(stack, "pair", long)))
        caller.start()

        deadline = time.monotonic() + 60
        busy: list[fleet_pb2.AgentInfo] = []
        while not busy and time.monotonic() < deadline:
            busy = [a for a in _agents(stack, "pair") if a.busy]
            time.sleep(0.1)
        assert len(busy) == 1, "the job never started"
        victim_id = busy[0].agent_id
        assert victim_id in stack.read_log("agent-pair-0.log")  # "registered as <id>"
        while "received" not in stack.read_log("agent-pair-0.log"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the 5 s of timed runs
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        caller.join(90)
        assert not caller.is_alive() and len(outcome) == 1
        survivor_id = next(a.agent_id for a in _agents(stack, "pair"))
        latency = outcome[0]
        assert victim_id != survivor_id and latency.agent_id == survivor_id
        assert latency.n >= QUICK_MEASUREMENT["min_runs"] and sum(latency.samples_ms) >= 4500
        assert _done(stack, "pair") == before + 1
        assert second.poll() is None
        assert stack.read_log("agent-pair-1.log").count(" done in ") == 1
