"""The execution model through real servers: an asyncio front that a thousand agent streams do not
slow down, and a compute plane that drops abandoned work, serves clients in turn, refuses work
past its queue, caps a computation's time, and cancels on the board a job nobody waits for."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import urllib.request

import grpc
import pytest
from conftest import QUICK_MEASUREMENT
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from test_agent_watchdog import loop_model, tiny_upload

from edgescore.client import NO_RETRY, EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.client.requests import score_request
from edgescore.grammar.nb201 import Nb201Grammar
from edgescore.v1 import agent_pb2, agent_pb2_grpc, common_pb2, scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.slow

GOOD = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
# Minutes of work on one core: it only ever ends by being stopped.
HEAVY = {"repeats": 100, "batch_size": 128}


def archs(n: int, seed: int = 0) -> list[str]:
    import random

    rng, sampler = random.Random(seed), Nb201Grammar()
    return sorted({sampler.sample(rng) for _ in range(n * 3)})[:n]


def compute_units(stack: LocalStack, outcome: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics") as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "edgescore_compute_units_total" and s.labels["outcome"] == outcome)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_a_thousand_agent_streams_leave_every_rpc_answering() -> None:
    """Each connected agent used to hold a handler thread: the 8th froze the server."""
    with LocalStack(agents={"local-cpu": 1}) as stack:
        channel = grpc.insecure_channel(stack.target)
        health = health_pb2_grpc.HealthStub(channel)
        scoring = scoring_pb2_grpc.ScoringServiceStub(channel)

        def probe() -> float:
            return max(timed(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5)),
                       timed(lambda: scoring.ListProxies(scoring_pb2.ListProxiesRequest(),
                                                         timeout=5)))

        idle = statistics.median(probe() for _ in range(5))
        connected = threading.Event()
        release = threading.Event()
        errors: list = []

        async def agents(n: int, channels: int = 10) -> None:
            opened = [grpc.aio.insecure_channel(stack.target) for _ in range(channels)]
            queues: list[asyncio.Queue] = []
            calls = []

            async def messages(q: asyncio.Queue):
                while True:
                    message = await q.get()
                    if message is None:
                        return
                    yield message

            for i in range(n):
                q: asyncio.Queue = asyncio.Queue()
                caps = agent_pb2.Capabilities(device_class="swarm", hostname=f"fake-{i}")
                q.put_nowait(agent_pb2.AgentMessage(register=agent_pb2.Register(
                    capabilities=caps)))
                stub = agent_pb2_grpc.AgentServiceStub(opened[i % channels])
                calls.append(stub.Connect(messages(q)))
                queues.append(q)
            try:
                firsts = await asyncio.gather(*(c.read() for c in calls))
                assert all(f.registered.agent_id for f in firsts)
                connected.set()
                while not release.is_set():  # heartbeats keep them online
                    for q in queues:
                        q.put_nowait(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat()))
                    await asyncio.sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)
                connected.set()
            finally:
                for q in queues:
                    q.put_nowait(None)
                for c in calls:
                    c.cancel()
                for ch in opened:
                    await ch.close()

        swarm = threading.Thread(target=lambda: asyncio.run(agents(1000)))
        swarm.start()
        try:
            assert connected.wait(120) and not errors, errors
            loaded = [probe() for _ in range(10)]
            with stack.client(timeout=60) as client:
                swarm_info = {d.device_class: d for d in client.devices()}["swarm"]
                assert swarm_info.agents_online == 1000
                # A real agent still measures while the thousand streams are open.
                result = client.score(GOOD, ["params"], ["local-cpu"],
                                      measurement=QUICK_MEASUREMENT)
                assert result.latencies["local-cpu"].ok
        finally:
            release.set()
            swarm.join(60)
            channel.close()
    # "Normal time": within a few idle round trips, never near a deadline.
    assert max(loaded) < max(0.5, 20 * idle), (idle, loaded)


def test_an_abandoned_request_stops_computing() -> None:
    with LocalStack(agents={}, server_args=["--compute-workers", "1"]) as stack:
        with stack.client(timeout=60) as client:
            client.score(GOOD, ["synflow"])  # the worker is up
            hurried = stack.client(timeout=2.0, retry=NO_RETRY)
            with pytest.raises(EdgescoreError) as info:
                hurried.score(GOOD, ["naswot"], proxy_settings=HEAVY)
            hurried.close()
            assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            # The one worker is free again at once: the abandoned unit stopped.
            seconds = timed(lambda: client.score(archs(1, 7)[0], ["synflow"]))
            assert seconds < 10, seconds
            assert compute_units(stack, "cancelled") >= 1


def test_a_cancelled_stream_stops_and_another_client_is_served_in_turn() -> None:
    requests = [score_request(arch, ["synflow", "naswot"]) for arch in archs(400)]
    with LocalStack(agents={}, server_args=["--compute-workers", "1"]) as stack:
        with stack.client(timeout=120) as b:
            b.score(GOOD, ["synflow"])
            idle = statistics.median(timed(lambda: b.score(GOOD, ["synflow"], no_cache=True))
                                     for _ in range(3))
            a = stack.client(timeout=300)
            stream = a.score_stream(iter(requests))
            got = [next(iter(stream)) for _ in range(3)]
            assert all(item.WhichOneof("outcome") == "result" for item in got)
            # B's single requests take turns with A's 400-item stream.
            busy = [timed(lambda i=i: b.score(archs(1, 100 + i)[0], ["synflow"]))
                    for i in range(5)]
            stream.close()
            a.close()
            time.sleep(2.0)  # the stream's units in progress are abandoned
            done = compute_units(stack, "ok")
            time.sleep(3.0)
            assert compute_units(stack, "ok") == done  # nothing more of A's is computed
            assert compute_units(stack, "cancelled") >= 1
    # A's items are two proxies each and B's one: a turn of each, plus the unit in progress.
    assert max(busy) < 3 * idle + 2 * stream_item_seconds(idle), (idle, busy)


def stream_item_seconds(idle: float) -> float:
    return 10 * max(idle, 0.05)  # naswot is about ten times synflow on NB201


def test_a_full_queue_answers_resource_exhausted_with_a_pushback_the_sdk_honours() -> None:
    args = ["--compute-workers", "1", "--max-queued", "2", "--max-queued-per-client", "2"]
    with LocalStack(agents={}, server_args=args) as stack:
        with stack.client(timeout=120) as client:
            client.score(GOOD, ["synflow"])  # the worker is up
        errors: list[EdgescoreError] = []

        def heavy(i: int) -> None:
            with stack.client(timeout=3, retry=NO_RETRY) as client:
                try:
                    client.score(archs(1, i)[0], ["naswot"], proxy_settings=HEAVY)
                except EdgescoreError as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=heavy, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        full = [e for e in errors if e.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert full, errors  # one runs, two wait, the others are refused
        assert all(e.retry_after and "retry later" in e.details for e in full)
        # With the default policy the SDK waits the pushback out and gets its answers.
        with stack.client(timeout=120) as client:
            items = list(client.score_many(archs(12, 3), ["synflow"], max_in_flight=6))
        assert all(item.ok for item in items), [i.error for i in items if not i.ok]


def test_the_compute_time_cap_answers_deadline_exceeded_per_item() -> None:
    with LocalStack(agents={}, server_args=["--max-compute-seconds", "3"]) as stack:
        with stack.client(timeout=120) as client:
            heavy = common_pb2.ProxyRequest(name="naswot", settings=common_pb2.ProxySettings(
                **HEAVY))
            result = client.score(GOOD, ["synflow", heavy])
            assert result.proxies["synflow"].ok  # computed before the cap: kept
            naswot = result.proxies["naswot"]
            assert naswot.code == grpc.StatusCode.DEADLINE_EXCEEDED, naswot
            assert "max-compute-seconds" in naswot.message
            assert client.score(GOOD, ["synflow"]).proxies["synflow"].provenance == "CACHED"


def test_a_job_nobody_waits_for_is_cancelled_on_the_board() -> None:
    """The hung upload's only request gives up after 3 s: the server sends CancelJob, the agent
    kills its measuring child, and the next job does not wait out the agent's own cap."""
    with LocalStack(agents={}) as stack:
        stack.start_agent("board", extra=["--max-job-seconds", "120"])
        stack.wait_for_agents({"board": 1})
        with stack.client(timeout=120) as client:
            lat = client.score(loop_model(10**12), [], ["board"], space="onnx",
                               measurement=QUICK_MEASUREMENT,
                               latency_timeout=3).latencies["board"]
            assert lat.code == grpc.StatusCode.DEADLINE_EXCEEDED, lat
            seconds = timed(lambda: client.score(
                tiny_upload(), [], ["board"], space="onnx", measurement=QUICK_MEASUREMENT))
            assert seconds < 30, seconds
        assert "cancelled by server" in stack.read_log("agent-board-0.log")


@pytest.mark.skipif(not os.environ.get("EDGESCORE_TEST_RAY_ADDRESS"),
                    reason="no Ray cluster (tools/with_ray.sh starts one)")
def test_a_ray_cluster_serves_the_same_values_as_the_local_pool() -> None:
    address = os.environ["EDGESCORE_TEST_RAY_ADDRESS"]
    proxies = ["params", "flops", "synflow", "naswot", "zico"]
    cells = archs(2, 11)
    with LocalStack(agents={}) as local, local.client(timeout=300) as client:
        expected = [client.score(c, proxies, seed=5).proxies for c in cells]
    args = ["--compute", "ray", "--ray-address", address]
    with LocalStack(agents={"local-cpu": 1}, server_args=args) as ray_stack:
        with ray_stack.client(timeout=300) as client:
            got = [client.score(c, proxies, seed=5).proxies for c in cells]
            for want, have in zip(expected, got):
                assert {p: have[p].value for p in proxies} == {p: want[p].value for p in proxies}
                assert all(have[p].provenance == "COMPUTED" for p in proxies)
            # Exports run on Ray too, and an abandoned unit frees its place.
            lat = client.score(cells[0], [], ["local-cpu"], measurement=QUICK_MEASUREMENT)
            assert lat.latencies["local-cpu"].ok
            with pytest.raises(EdgescoreError):
                with ray_stack.client(timeout=3, retry=NO_RETRY) as hurried:
                    hurried.score(GOOD, ["naswot"], proxy_settings=HEAVY)
            assert timed(lambda: client.score(archs(1, 99)[0], ["synflow"])) < 30
        assert "ray backend" in ray_stack.read_log("server.log")
