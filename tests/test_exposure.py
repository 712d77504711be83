"""Nothing exposed by default: /metrics binds loopback, tokens come from files (or the
environment) so they never show in a command line, and reflection needs the API token like the
API itself (health stays open for probes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edgescore import TOKEN_METADATA_KEY
from edgescore.client import Client, EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.device_agent import config as agent_config
from edgescore.server import config as server_config

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "api-secret-4c1d"
FLEET_TOKEN = "fleet-secret-9b7e"
LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) listening on TCP `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def wait_for(predicate, what: str, timeout: float = 120.0, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: exited {proc.returncode}\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)
    return value


# --- settings -------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch):
    for name in ("API_TOKEN", "FLEET_TOKEN", "API_TOKEN_FILE", "FLEET_TOKEN_FILE",
                 "METRICS_ADDRESS"):
        monkeypatch.delenv(f"EDGESCORE_SERVER_{name}", raising=False)
    for name in ("TOKEN", "TOKEN_FILE", "METRICS_ADDRESS"):
        monkeypatch.delenv(f"EDGESCORE_AGENT_{name}", raising=False)
        monkeypatch.delenv(f"EDGESCORE_{name}", raising=False)
    return monkeypatch


def test_metrics_bind_loopback_by_default(clean_env):
    assert server_config.load_config([]).metrics_address == "127.0.0.1"
    assert agent_config.load_config([]).metrics_address == "127.0.0.1"


def test_tokens_from_files_and_environment(clean_env, tmp_path):
    api, fleet = tmp_path / "api", tmp_path / "fleet"
    api.write_text(f"  {API_TOKEN}\n")
    fleet.write_text(FLEET_TOKEN + "\n")
    server = server_config.load_config(["--api-token-file", str(api),
                                        "--fleet-token-file", str(fleet)])
    assert (server.api_token, server.fleet_token) == (API_TOKEN, FLEET_TOKEN)
    assert agent_config.load_config(["--token-file", str(fleet)]).token == FLEET_TOKEN

    clean_env.setenv("EDGESCORE_SERVER_API_TOKEN", "from-env")
    clean_env.setenv("EDGESCORE_SERVER_FLEET_TOKEN_FILE", str(fleet))
    clean_env.setenv("EDGESCORE_AGENT_TOKEN", "agent-env")
    server = server_config.load_config([])
    assert (server.api_token, server.fleet_token) == ("from-env", FLEET_TOKEN)
    assert agent_config.load_config([]).token == "agent-env"


@pytest.mark.parametrize("argv", [
    ["--api-token", "x", "--api-token-file", "{file}"],
    ["--fleet-token", "x", "--fleet-token-file", "{file}"],
    ["--api-token-file", "{missing}"],
    ["--fleet-token-file", "{empty}"],
])
def test_server_token_file_usage_errors(clean_env, tmp_path, capsys, argv):
    (tmp_path / "file").write_text("t")
    (tmp_path / "empty").write_text(" \n")
    paths = {k: str(tmp_path / k) for k in ("file", "missing", "empty")}
    with pytest.raises(SystemExit) as info:
        server_config.load_config([a.format(**paths) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "give one, not both" in err or "cannot read" in err or "is empty" in err, err


def test_agent_token_file_usage_errors_in_a_real_process(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t")
    for args, says in ((["--token", "x", "--token-file", str(token_file)],
                        "--token (EDGESCORE_AGENT_TOKEN) and --token-file"),
                       (["--token-file", str(tmp_path / "missing")],
                        f"--token-file: cannot read {tmp_path / 'missing'}")):
        done = subprocess.run([sys.executable, "-m", "edgescore.device_agent", *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and says in done.stderr, done.stderr


def test_compose_binds_metrics_inside_its_network_and_publishes_them_on_loopback():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    server, agent = compose["services"]["server"], compose["services"]["agent"]
    assert server["environment"]["EDGESCORE_SERVER_METRICS_ADDRESS"] == "0.0.0.0"
    assert agent["environment"]["EDGESCORE_AGENT_METRICS_ADDRESS"] == "0.0.0.0"
    assert "127.0.0.1:9464:9464" in server["ports"] and agent["ports"] == ["127.0.0.1:9465:9465"]


# --- real processes -------------------------------------------------------------------------


def _reflection_services(channel: grpc.Channel, metadata: tuple = ()) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=metadata,
        timeout=10)
    return [s.name for r in replies for s in r.list_services_response.service]


@pytest.mark.slow
def test_real_server_and_agent_keep_tokens_and_metrics_private(tmp_path, clean_env):
    (tmp_path / "api").write_text(API_TOKEN)
    (tmp_path / "fleet").write_text(FLEET_TOKEN)
    ports_file, server_log, agent_log = (tmp_path / n for n in ("ports.json", "server.log",
                                                                 "agent.log"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGESCORE_")}
    env.update(PYTHONUNBUFFERED="1", ORT_DISABLE_TELEMETRY="1")
    procs = []
    try:
        with open(server_log, "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgescore.server", "--address", "127.0.0.1:0",
                 "--metrics-port", "0", "--port-file", str(ports_file), "--db", ":memory:",
                 "--compute-workers", "1", "--api-token-file", str(tmp_path / "api"),
                 "--fleet-token-file", str(tmp_path / "fleet")],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        server = procs[0]
        wait_for(ports_file.exists, "server start", proc=server, log=server_log)
        ports = json.loads(ports_file.read_text())
        assert listening_addresses(ports["metrics_port"]) == {LOOPBACK}
        target = f"127.0.0.1:{ports['port']}"

        with open(agent_log, "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgescore.device_agent", "--server", target,
                 "--device-class", "private-board", "--metrics-port", "0",
                 "--token-file", str(tmp_path / "fleet")],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        agent = procs[1]
        for proc in procs:
            assert API_TOKEN not in cmdline(proc.pid) and FLEET_TOKEN not in cmdline(proc.pid)

        with Client(target, timeout=10) as anonymous:
            with pytest.raises(EdgescoreError) as info:
                anonymous.devices()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(target, token=API_TOKEN, timeout=10) as client:
            wait_for(lambda: any(d.device_class == "private-board" and d.agents_online
                                 for d in client.devices()), "agent registered", proc=agent,
                     log=agent_log)
        line = wait_for(lambda: next((x for x in agent_log.read_text().splitlines()
                                      if "serving metrics on http://127.0.0.1:" in x), None),
                        "agent metrics", proc=agent, log=agent_log)
        agent_metrics_port = int(line.rsplit(":", 1)[1].split("/")[0])
        assert listening_addresses(agent_metrics_port) == {LOOPBACK}

        with grpc.insecure_channel(target) as channel:
            with pytest.raises(grpc.RpcError) as denied:
                _reflection_services(channel)
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
            services = _reflection_services(channel, ((TOKEN_METADATA_KEY, API_TOKEN),))
            assert "edgescore.v1.ScoringService" in services
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for proc in reversed(procs):
            LocalStack.terminate(proc, timeout=30)
