"""Observability: RPC metrics and request ids from the interceptor (in-process), JSON logs, the
deploy/ files, and a real stack whose server and agent /metrics move under a small workload,
whose JSON logs carry request ids, and which a real Prometheus scrapes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import QUICK_MEASUREMENT
from prometheus_client.parser import text_string_to_metric_families

from edgescore.logs import REQUEST_ID, JsonFormatter, check_format
from edgescore.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "edgescore.json"
GOOD = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
BAD = "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"
PROMETHEUS_MISSING = ("no `prometheus` binary: install Debian's package (`apt-get install "
                      "prometheus`; `make test` does it through tools/with_prometheus.sh when "
                      "run as root) or set EDGESCORE_TEST_PROMETHEUS")


# --- helpers ---------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def exposed_names(text: str) -> set[str]:
    """Every series name a query may use: the samples present, plus the names a declared family
    has even before its first observation (labelled metrics without children)."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(s.name for s in family.samples)
        names.update(family.name + sfx for sfx in suffixes.get(family.type, ("",)))
    return names


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return exprs


def dashboard_metric_names() -> set[str]:
    return {name for expr in dashboard_queries()
            for name in re.findall(r"\bedgescore_[a-z0-9_]+\b", expr)}


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.1)


# --- logs ------------------------------------------------------------------------------------


def test_json_formatter_one_object_per_line_with_request_id_and_exception() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("edgescore.test", logging.ERROR, __file__, 1,
                               "two\nlines %s", ("here",), None)
    token = REQUEST_ID.set("rid-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
        record.grpc_code = "OK"  # an `extra=` field
        line = formatter.format(record)
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "ERROR" and out["logger"] == "edgescore.test"
    assert out["message"] == "two\nlines here"
    assert out["request_id"] == "rid-1" and out["grpc_code"] == "OK"
    assert "ValueError: boom" in out["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["ts"])
    plain = json.loads(formatter.format(logging.LogRecord("x", logging.INFO, "", 0, "m", (),
                                                          None)))
    assert set(plain) == {"ts", "level", "logger", "message"}


def test_log_format_option_server_and_agent(monkeypatch) -> None:
    from edgescore.device_agent import config as agent_config
    from edgescore.server import config as server_config

    for name in ("EDGESCORE_SERVER_LOG_FORMAT", "EDGESCORE_AGENT_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    assert server_config.load_config([]).log_format == "text"
    assert agent_config.load_config([]).log_format == "text"
    assert server_config.load_config(["--log-format", "JSON"]).log_format == "json"
    monkeypatch.setenv("EDGESCORE_SERVER_LOG_FORMAT", "json")
    monkeypatch.setenv("EDGESCORE_AGENT_LOG_FORMAT", "json")
    assert server_config.load_config([]).log_format == "json"
    assert agent_config.load_config([]).log_format == "json"
    for load in (server_config.load_config, agent_config.load_config):
        with pytest.raises(SystemExit):
            load(["--log-format", "xml"])
    with pytest.raises(ValueError):
        check_format("yaml")


# --- the interceptor, in process -------------------------------------------------------------


class _Echo:
    """A generic service whose handlers report the request id they see, abort, or wait."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None  # made on the server's loop

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == b"bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
        if request == b"slow":
            await asyncio.sleep(1.0)
        if request == b"raise":
            raise RuntimeError("handler bug")
        return REQUEST_ID.get().encode()

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[bytes]:
        for i in range(3):
            if i == 1:
                if request == b"abort":
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "stop")
                await asyncio.wait_for(self.gate.wait(), 10)
            yield f"{i}:{REQUEST_ID.get()}".encode()

    async def bidi(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request + b":" + REQUEST_ID.get().encode()


class _Loop:
    """An event loop on a thread of its own: the aio server runs there, the test drives it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn, *args) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def echo_server():
    from edgescore.server.metrics import Metrics
    from edgescore.server.service.interceptors import ObservabilityInterceptor

    metrics, echo, loop = Metrics(), _Echo(), _Loop()

    async def start() -> tuple[grpc.aio.Server, int]:
        echo.gate = asyncio.Event()
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(echo.unary),
            "Stream": grpc.unary_stream_rpc_method_handler(echo.stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(echo.bidi),
        })
        server = grpc.aio.server(interceptors=[ObservabilityInterceptor(metrics)])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop.run(start())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    echo.set_gate = lambda: loop.call(echo.gate.set)
    echo.clear_gate = lambda: loop.call(echo.gate.clear)
    try:
        yield metrics, echo, channel
    finally:
        echo.set_gate()
        channel.close()
        loop.run(server.stop(None))
        loop.close()


def _count(metrics, method: str, code: str) -> float:
    return metrics.registry.get_sample_value(
        "edgescore_rpc_requests_total", {"method": method, "code": code}) or 0.0


def _hist_count(metrics, method: str, code: str) -> float:
    return metrics.registry.get_sample_value(
        "edgescore_rpc_duration_seconds_count", {"method": method, "code": code}) or 0.0


def test_interceptor_unary_codes_request_ids_and_access_log(echo_server, caplog) -> None:
    metrics, _, channel = echo_server
    unary = channel.unary_unary("/test.Echo/Unary")
    caplog.set_level(logging.INFO, logger="edgescore.server.access")

    response, call = unary.with_call(b"hi", metadata=(("x-request-id", "client-rid-1"),))
    assert response == b"client-rid-1"  # the handler's task sees it in the context variable
    assert ("x-request-id", "client-rid-1") in tuple(call.initial_metadata())
    assert ("x-request-id", "client-rid-1") in tuple(call.trailing_metadata())

    response, call = unary.with_call(b"hi")  # no id given: one is generated and returned
    assert re.fullmatch(r"[0-9a-f]{32}", response.decode())
    assert ("x-request-id", response.decode()) in tuple(call.initial_metadata())

    with pytest.raises(grpc.RpcError) as err:
        unary(b"bad", metadata=(("x-request-id", "client-rid-2"),))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("x-request-id", "client-rid-2") in tuple(err.value.trailing_metadata())
    with pytest.raises(grpc.RpcError) as err:
        unary(b"raise")
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError) as err:
        unary(b"slow", timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    assert _count(metrics, "Unary", "OK") == 2 and _hist_count(metrics, "Unary", "OK") == 2
    assert _count(metrics, "Unary", "INVALID_ARGUMENT") == 1
    assert _count(metrics, "Unary", "UNKNOWN") == 1
    codes = ("OK", "INVALID_ARGUMENT", "UNKNOWN", "DEADLINE_EXCEEDED", "CANCELLED")
    wait_for(lambda: _count(metrics, "Unary", "DEADLINE_EXCEEDED") == 1,
             what=lambda: f"deadline: {({c: _count(metrics, 'Unary', c) for c in codes})}")
    time.sleep(1.0)  # the slow handler returns after its deadline: still recorded once
    assert sum(_count(metrics, "Unary", c) for c in codes) == 5
    lines = [r for r in caplog.records if r.name == "edgescore.server.access"]
    assert any(r.request_id == "client-rid-2" and r.grpc_code == "INVALID_ARGUMENT"
               for r in lines)


def test_interceptor_streams_recorded_when_the_iterator_ends(echo_server) -> None:
    metrics, echo, channel = echo_server
    stream = channel.unary_stream("/test.Echo/Stream")

    responses = stream(b"go", metadata=(("x-request-id", "s-1"),))
    assert next(responses) == b"0:s-1"
    time.sleep(0.2)
    assert _count(metrics, "Stream", "OK") == 0  # not before the response stream has ended
    echo.set_gate()
    assert list(responses) == [b"1:s-1", b"2:s-1"]
    assert ("x-request-id", "s-1") in tuple(responses.initial_metadata())
    wait_for(lambda: _count(metrics, "Stream", "OK") == 1, what="stream OK")
    assert _hist_count(metrics, "Stream", "OK") == 1

    aborted = stream(b"abort")
    assert next(aborted).startswith(b"0:")
    with pytest.raises(grpc.RpcError) as err:
        next(aborted)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    wait_for(lambda: _count(metrics, "Stream", "FAILED_PRECONDITION") == 1, what="abort")

    echo.clear_gate()
    cancelled = stream(b"go")
    assert next(cancelled).startswith(b"0:")
    cancelled.cancel()
    wait_for(lambda: _count(metrics, "Stream", "CANCELLED") == 1, what="cancel")
    echo.set_gate()
    time.sleep(0.3)
    assert _count(metrics, "Stream", "CANCELLED") + _count(metrics, "Stream", "OK") == 2

    bidi = channel.stream_stream("/test.Echo/Bidi")
    out = list(bidi(iter([b"a", b"b"]), metadata=(("x-request-id", "b-1"),)))
    assert out == [b"a:b-1", b"b:b-1"]
    wait_for(lambda: _count(metrics, "Bidi", "OK") == 1, what="bidi OK")


# --- deploy/ ---------------------------------------------------------------------------------


def test_deploy_files_parse() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"server", "agent", "prometheus", "grafana"} <= set(compose["services"])
    assert compose["services"]["server"]["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / "Dockerfile").exists()
    assert (ROOT / compose["services"]["agent"]["build"]["dockerfile"]).exists()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert targets == {"server:9464", "agent:9465"}
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/edgescore.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == uid for p in panels)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package brings it
        check = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


def test_dashboard_metric_names_are_exported_in_process() -> None:
    """Every edgescore_* name the dashboard queries is declared by the server or the agent."""
    from prometheus_client import generate_latest

    from edgescore.device_agent.metrics import AgentMetrics
    from edgescore.server.metrics import Metrics

    metrics = Metrics()
    metrics.watch_fleet(lambda: [{"device_class": "c", "agents": [], "busy": 0,
                                  "queue_depth": 0}])
    metrics.watch_compute(lambda: {"queued": 0, "running": 0, "slots": 1})
    agent = AgentMetrics()
    agent.set_info("c", "0")
    names = exposed_names(generate_latest(metrics.registry).decode()) | exposed_names(
        agent.render())
    missing = dashboard_metric_names() - names
    assert not missing, f"dashboard queries unknown series: {sorted(missing)}"


# --- a real stack ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def obs_stack():
    """Server and one local agent, both logging JSON; the agent serves /metrics too."""
    from edgescore.client.launcher import LocalStack

    with LocalStack(agents={}, server_args=["--log-format", "json"]) as stack:
        stack.start_agent("local-cpu", extra=["--metrics-port", "0", "--metrics-address",
                                              "127.0.0.1", "--log-format", "json"])
        stack.wait_for_agents({"local-cpu": 1})
        log_name = "agent-local-cpu-0.log"
        match = wait_for(lambda: re.search(r"http://127\.0\.0\.1:(\d+)/metrics",
                                           stack.read_log(log_name)), what="agent metrics port")
        stack.agent_metrics_port = int(match.group(1))
        stack.agent_log = log_name
        yield stack


def _score_request(arch: str, proxies: list[str], devices: list[str], request_id: str = ""
                   ) -> scoring_pb2.ScoreRequest:
    return scoring_pb2.ScoreRequest(
        request_id=request_id, arch=common_pb2.ArchSpec(nb201=arch),
        proxies=[common_pb2.ProxyRequest(name=p) for p in proxies],
        devices=[common_pb2.DeviceTarget(device_class=d,
                                         settings=common_pb2.MeasurementSettings(
                                             **QUICK_MEASUREMENT)) for d in devices])


@pytest.mark.slow
def test_workload_moves_server_and_agent_metrics(obs_stack) -> None:
    before = parse_metrics(scrape(obs_stack.metrics_port))
    agent_before = parse_metrics(scrape(obs_stack.agent_metrics_port))
    with grpc.insecure_channel(obs_stack.target) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        first = stub.Score(_score_request(GOOD, ["params", "synflow"], ["local-cpu"]), timeout=300)
        assert first.latencies[0].status.code == 0, first.latencies[0].status.message
        assert first.proxies[1].provenance == common_pb2.COMPUTED
        second = stub.Score(_score_request(GOOD, ["params", "synflow"], ["local-cpu"]),
                            timeout=300)
        assert second.proxies[1].provenance == common_pb2.CACHED
        assert second.latencies[0].provenance == common_pb2.CACHED
        with pytest.raises(grpc.RpcError) as err:
            stub.Score(_score_request(BAD, ["params"], []), timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        items = list(stub.ScoreStream(iter([_score_request(GOOD, ["params"], [])]), timeout=120))
        assert len(items) == 1 and items[0].HasField("result")

    def server_moved():
        after = parse_metrics(scrape(obs_stack.metrics_port))
        ok = (sample(after, "edgescore_measurement_duration_seconds_count",
                     device_class="local-cpu", outcome="ok")
              - sample(before, "edgescore_measurement_duration_seconds_count",
                       device_class="local-cpu", outcome="ok")) == 1
        return after if ok else None

    after = wait_for(server_moved, what="the measurement duration histogram")

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("edgescore_rpc_requests_total", method="Score", code="OK") == 2
    assert delta("edgescore_rpc_requests_total", method="Score", code="INVALID_ARGUMENT") == 1
    assert delta("edgescore_rpc_duration_seconds_count", method="Score", code="OK") == 2
    assert delta("edgescore_rpc_duration_seconds_count", method="Score",
                 code="INVALID_ARGUMENT") == 1
    assert delta("edgescore_rpc_requests_total", method="ScoreStream", code="OK") == 1
    assert delta("edgescore_proxy_compute_seconds_count", proxy="synflow", space="nb201",
                 outcome="ok") == 1
    assert delta("edgescore_proxy_compute_seconds_sum", proxy="synflow", space="nb201",
                 outcome="ok") > 0
    # One proxies unit (params and synflow of the first Score) and one export, both ok.
    assert delta("edgescore_compute_units_total", kind="proxies", outcome="ok") == 1
    assert delta("edgescore_compute_units_total", kind="export", outcome="ok") == 1
    assert delta("edgescore_compute_unit_duration_seconds_count", kind="proxies",
                 outcome="ok") == 1
    assert sample(after, "edgescore_compute_slots") >= 1
    assert sample(after, "edgescore_compute_queue_depth") == 0
    assert delta("edgescore_cache_lookups_total", kind="proxy", outcome="hit") >= 2
    assert delta("edgescore_cache_lookups_total", kind="proxy", outcome="miss") >= 1
    assert delta("edgescore_cache_lookups_total", kind="measurement", outcome="miss") == 1
    assert delta("edgescore_cache_lookups_total", kind="measurement", outcome="hit") == 1
    assert delta("edgescore_measurements_total", device_class="local-cpu", outcome="ok") == 2
    assert delta("edgescore_measurement_duration_seconds_sum", device_class="local-cpu",
                 outcome="ok") > 0
    assert delta("edgescore_exports_total", format="onnx", outcome="ok") == 1
    assert sample(after, "edgescore_agents_online", device_class="local-cpu") == 1
    assert ("edgescore_queue_depth", frozenset({("device_class", "local-cpu")})) in after

    agent_after = parse_metrics(scrape(obs_stack.agent_metrics_port))
    assert (sample(agent_after, "edgescore_agent_jobs_total", outcome="ok")
            - sample(agent_before, "edgescore_agent_jobs_total", outcome="ok")) == 1
    assert (sample(agent_after, "edgescore_agent_job_duration_seconds_count")
            - sample(agent_before, "edgescore_agent_job_duration_seconds_count")) == 1
    assert sample(agent_after, "edgescore_agent_connected") == 1
    assert sample(agent_after, "edgescore_agent_info", device_class="local-cpu",
                  version=__import__("edgescore").__version__) == 1

    # Every series the Grafana dashboard queries exists in what the two processes export.
    names = exposed_names(scrape(obs_stack.metrics_port)) | exposed_names(
        scrape(obs_stack.agent_metrics_port))
    missing = dashboard_metric_names() - names
    assert not missing, f"dashboard queries series nobody exports: {sorted(missing)}"


@pytest.mark.slow
def test_json_logs_carry_the_request_id(obs_stack) -> None:
    with grpc.insecure_channel(obs_stack.target) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        result, call = stub.Score.with_call(_score_request(GOOD, ["params"], []), timeout=120,
                                            metadata=(("x-request-id", "obs-test-rid-ok"),))
        assert result.request_id == "obs-test-rid-ok"  # an empty request_id takes the header's
        assert ("x-request-id", "obs-test-rid-ok") in tuple(call.initial_metadata())
        with pytest.raises(grpc.RpcError) as err:
            stub.Score(_score_request(BAD, ["params"], [], request_id="obs-test-rid-bad"),
                       timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ("x-request-id", "obs-test-rid-bad") in tuple(err.value.initial_metadata())

    def lines(name: str) -> list[dict]:
        out = []
        for line in obs_stack.read_log(name).splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))  # every logging line is one JSON object
            else:
                # Nothing written through `logging` may be plain text (stray library prints,
                # e.g. warnings, are not log records and may appear).
                assert not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", line), line
        return out

    def access(rid: str) -> list[dict]:
        return [r for r in lines("server.log") if r.get("request_id") == rid]

    ok = wait_for(lambda: access("obs-test-rid-ok"), what="the access log line")
    assert ok[0]["logger"] == "edgescore.server.access" and ok[0]["grpc_code"] == "OK"
    assert {"ts", "level", "logger", "message"} <= set(ok[0])
    bad = wait_for(lambda: access("obs-test-rid-bad"), what="the failed call's log line")
    assert bad[0]["grpc_code"] == "INVALID_ARGUMENT" and "Score" in bad[0]["message"]
    agent = lines(obs_stack.agent_log)
    assert agent and all({"ts", "level", "logger", "message"} <= set(r) for r in agent)


@pytest.mark.slow
def test_a_real_prometheus_scrapes_server_and_agent(obs_stack, tmp_path) -> None:
    binary = os.environ.get("EDGESCORE_TEST_PROMETHEUS") or shutil.which("prometheus")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip(PROMETHEUS_MISSING)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: edgescore-server\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{obs_stack.metrics_port}']\n"
        "  - job_name: edgescore-agent\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{obs_stack.agent_metrics_port}']\n")
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)

    def query(expr: str) -> dict:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400: a bad query, with Prometheus' reason
            return json.loads(exc.read())

    def series(expr: str) -> list:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(OSError, ValueError):
            return query(expr)["data"]["result"]
        return []

    try:
        found = wait_for(lambda: series("edgescore_rpc_requests_total"), timeout=60,
                         what="edgescore_rpc_requests_total in Prometheus")
        assert {r["metric"]["job"] for r in found} == {"edgescore-server"}
        assert wait_for(lambda: series('edgescore_agents_online{device_class="local-cpu"}'),
                        timeout=30, what="agents online")[0]["value"][1] == "1"
        wait_for(lambda: series("edgescore_agent_connected == 1"), timeout=30,
                 what="the agent's series")
        up = series("up")
        assert {(r["metric"]["job"], r["value"][1]) for r in up} == {
            ("edgescore-server", "1"), ("edgescore-agent", "1")}
        # Every dashboard query is valid PromQL for this Prometheus.
        for expr in dashboard_queries():
            answer = query(expr.replace("$__rate_interval", "1m")
                           .replace("$device_class", ".*"))
            assert answer.get("status") == "success", (expr, answer)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
