"""End to end: a real edgescore-server and edgescore-agent (subprocesses) and the real client."""

from __future__ import annotations

import math
import urllib.request

import grpc
import pytest
from conftest import QUICK_MEASUREMENT, nb201_rows
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edgescore.client import Client, EdgescoreError
from edgescore.server.proxies.registry import all_composites, all_proxies
from edgescore.v1 import common_pb2, scoring_pb2

pytestmark = pytest.mark.slow

PROXIES = ["params", "flops", "synflow", "naswot"]
GOOD = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def test_scores_nb201_archs_with_agent_latency(stack) -> None:
    rows = [r for r in nb201_rows()[:40] if "none" not in r["arch"]][:3]
    rows += [r for r in nb201_rows()[:40] if "none" in r["arch"]][:3]
    assert len(rows) == 6
    measured = 0
    with Client(stack.target) as client:
        assert {d.device_class for d in client.devices()} == {"local-cpu"}
        for row in rows:
            result = client.score(row["arch"], PROXIES, ["local-cpu"], seed=0,
                                  measurement=QUICK_MEASUREMENT)
            assert result.space == "nb201"
            assert result.canonical_arch == row["arch"]
            assert set(result.proxies) == set(PROXIES)
            params = result.proxies["params"]
            assert params.ok and params.provenance == "COMPUTED"
            assert params.value == round(float(row["params_M"]) * 1e6), row
            degenerate = "degenerate_cell" in params.flags
            for name in PROXIES:
                proxy = result.proxies[name]
                if degenerate and name == "synflow":
                    # No signal reaches the output: a per-proxy failure with a reason, not -1e8.
                    assert proxy.code == grpc.StatusCode.FAILED_PRECONDITION, proxy
                    assert "degenerate" in proxy.message
                    continue
                assert proxy.ok, (name, proxy.message)
                assert math.isfinite(proxy.value)
            lat = result.latencies["local-cpu"]
            assert lat.ok, lat.message
            assert lat.provenance == "MEASURED"
            assert lat.agent_id.startswith("local-cpu")
            assert lat.runtime == "onnxruntime" and lat.runtime_version
            assert lat.n >= QUICK_MEASUREMENT["min_runs"] and len(lat.samples_ms) == lat.n
            assert 0 < lat.stats["minMs"] <= lat.median_ms <= lat.p90_ms <= lat.stats["maxMs"]
            assert lat.settings["warmupRuns"] == QUICK_MEASUREMENT["warmup_runs"]
            assert lat.settings["inputShape"] == [1, 3, 32, 32]
            assert len(lat.artifact_sha256) == 64
            measured += 1
        devices = {d.device_class: d for d in client.devices()}
        assert devices["local-cpu"].measurements_done >= measured == len(rows)


def test_same_seed_same_scores(stack) -> None:
    with Client(stack.target) as client:
        a = client.score(GOOD, ["synflow", "naswot"], seed=3)
        b = client.score(GOOD, ["synflow", "naswot"], seed=3)
    assert a.proxies["naswot"].value == b.proxies["naswot"].value
    assert a.proxies["synflow"].value == b.proxies["synflow"].value


@pytest.mark.parametrize(
    ("arch", "proxies", "devices", "code", "needle"),
    [
        ("|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["params"], [],
         grpc.StatusCode.INVALID_ARGUMENT, "nor_conv_9x9"),
        ("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|", ["params"], [],
         grpc.StatusCode.INVALID_ARGUMENT, "none~3"),
        ("|none~0|+|none~0|none~1|", ["params"], [],
         grpc.StatusCode.INVALID_ARGUMENT, "arch.nb201"),
        (GOOD, ["no_such_proxy"], [], grpc.StatusCode.NOT_FOUND, "no_such_proxy"),
        (GOOD, ["params"], ["no-such-board"], grpc.StatusCode.NOT_FOUND, "no-such-board"),
        (GOOD, ["params", "params"], [], grpc.StatusCode.INVALID_ARGUMENT, "proxies[1].name"),
    ],
)
def test_bad_input_gets_clear_status(stack, arch, proxies, devices, code, needle) -> None:
    with Client(stack.target) as client:
        with pytest.raises(EdgescoreError) as info:
            client.score(arch, proxies, devices)
        assert info.value.code == code
        assert needle in info.value.details
        # The server is still fine afterwards.
        assert client.score(GOOD, ["params"]).proxies["params"].ok


def test_request_without_arch_and_unserved_parts(stack) -> None:
    with Client(stack.target) as client:
        with pytest.raises(EdgescoreError) as info:
            client.score(common_pb2.ArchSpec(), ["params"])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(EdgescoreError) as info:
            client.score(common_pb2.ArchSpec(nats_sss="8:8:8:8:9"), ["params"])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "arch.nats_sss" in info.value.details
        with pytest.raises(EdgescoreError) as info:
            client.score(GOOD, ["params"], proxy_settings={"batch_size": 100000})
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "batch_size" in info.value.details


def test_score_stream_reports_per_item_errors(stack) -> None:
    requests = [
        scoring_pb2.ScoreRequest(request_id=f"ok-{i}", arch=common_pb2.ArchSpec(nb201=GOOD),
                                 proxies=[common_pb2.ProxyRequest(name="params")])
        for i in range(3)
    ]
    requests.insert(1, scoring_pb2.ScoreRequest(
        request_id="bad", arch=common_pb2.ArchSpec(nb201="|bogus|"),
        proxies=[common_pb2.ProxyRequest(name="params")]))
    with Client(stack.target) as client:
        items = {i.request_id: i for i in client.score_stream(requests)}
    assert set(items) == {"ok-0", "ok-1", "ok-2", "bad"}
    assert items["bad"].WhichOneof("outcome") == "error"
    assert items["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for key in ("ok-0", "ok-1", "ok-2"):
        assert items[key].result.proxies[0].value > 0


def test_lists_and_health_and_reflection(stack) -> None:
    with Client(stack.target) as client:
        names = {p.name for p in client.proxies()}
        assert {"params", "flops", "synflow", "naswot"} <= names
        spaces = {s.name: s.available for s in client.spaces()}
        assert all(spaces[name] for name in ("nb201", "nats_sss", "nb101", "macro", "vit",
                                             "fbnet", "onnx"))
    with grpc.insecure_channel(stack.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        services = {s.name for r in responses for s in r.list_services_response.service}
    assert {"edgescore.v1.ScoringService", "edgescore.v1.FleetService",
            "edgescore.v1.AgentService", "grpc.health.v1.Health"} <= services


def test_metrics_count_rpcs_by_method_and_code(stack) -> None:
    def scrape() -> str:
        url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def value(text: str, series: str) -> float:
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    ok = 'edgescore_rpc_requests_total{code="OK",method="Score"}'
    bad = 'edgescore_rpc_requests_total{code="INVALID_ARGUMENT",method="Score"}'
    before = scrape()
    with Client(stack.target) as client:
        client.score(GOOD, ["params"])
        with pytest.raises(EdgescoreError):
            client.score("|x~0|", ["params"])
    after = scrape()
    assert value(after, ok) == value(before, ok) + 1
    assert value(after, bad) == value(before, bad) + 1
    assert 'edgescore_agents_online{device_class="local-cpu"} 1.0' in after
    assert "edgescore_rpc_duration_seconds_bucket" in after


def test_every_registered_proxy_over_grpc(stack) -> None:
    with Client(stack.target) as client:
        # The registry's computed proxies (composites, built on them, have their own tests).
        composites = {c.name for c in all_composites()}
        names = [p.name for p in client.proxies() if p.name not in composites]
        assert len(names) >= 17
        # Small batches and one weight draw (SWAP averages 32) keep this quick; the protocols
        # are the same.
        several_draws = {p.name for p in all_proxies() if "inits" in p.extra_choices}
        asked = [common_pb2.ProxyRequest(name=n, settings=common_pb2.ProxySettings(
                     batch_size=16, repeats=1, seed=1, extra={"inits": "1"}))
                 if n in several_draws else n for n in names]
        result = client.score(GOOD, asked, seed=1,
                              proxy_settings={"batch_size": 16, "repeats": 1})
    assert set(result.proxies) == set(names)
    for name, proxy in result.proxies.items():
        assert proxy.ok, (name, proxy.code, proxy.message)
        assert math.isfinite(proxy.value), name
        assert proxy.provenance == "COMPUTED"
        assert proxy.settings["seed"] == "1"
