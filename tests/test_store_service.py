"""The store behind the real server: answers survive a restart, identical requests share a job,
and the latency predictor answers for a class with no agent online."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import grpc
import pytest
from conftest import PG_MISSING, PG_URL, QUICK_MEASUREMENT, SHARED

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.device_agent.replay import ReplayTable

pytestmark = pytest.mark.slow

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restart_serves_the_second_request_from_the_store(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip(PG_MISSING)
    server_args = ["--db", PG_URL] if backend == "postgresql" else []
    # A fresh seed: the PostgreSQL database outlives this test, the key must be new to it.
    seed = random.SystemRandom().randrange(1, 2**31)
    with LocalStack(agents={"local-cpu": 1}, server_args=server_args) as stack:
        def score():
            with stack.client(timeout=300) as client:
                return client.score(ARCH, proxies=["synflow", "snip", "params"],
                                    devices=["local-cpu"], seed=seed,
                                    measurement=QUICK_MEASUREMENT)

        first = score()
        assert {p.provenance for p in first.proxies.values()} == {"COMPUTED"}
        assert first.latencies["local-cpu"].provenance == "MEASURED"

        port = stack.port
        stack.stop_server()
        stack.start_server(port)
        stack.wait_for_agents({"local-cpu": 1})
        second = score()

        for name, value in first.proxies.items():
            again = second.proxies[name]
            assert again.provenance == "CACHED" and again.value == value.value, name
            assert again.settings == value.settings
        latency = second.latencies["local-cpu"]
        assert latency.provenance == "CACHED"
        assert latency.median_ms == first.latencies["local-cpu"].median_ms
        assert latency.samples_ms == first.latencies["local-cpu"].samples_ms
        with stack.client() as client:
            (device,) = [d for d in client.devices() if d.device_class == "local-cpu"]
        assert device.measurements_done >= 1  # the store's count, across the restart
        if backend == "sqlite":  # agents seen and job records are kept too
            from edgescore.server.store import open_store

            with open_store(Path(stack._tmp.name) / "results.db") as store:
                (agent,) = store.agents_seen("local-cpu")
                (job,) = store.jobs()
            assert agent.capabilities["device_class"] == "local-cpu"
            assert agent.last_seen >= agent.first_seen
            # One job only (the restarted server sent none), marked running on dispatch.
            assert (job.state, job.attempts) == ("done", 1) and job.agent_id
            assert job.job_id == first.latencies["local-cpu"].job_id
            assert device.measurements_done == 1


def test_identical_concurrent_requests_create_one_job() -> None:
    with LocalStack(agents={"local-cpu": 1}) as stack:
        settings = {**QUICK_MEASUREMENT, "min_seconds": 1.0}
        results: list = []

        def score() -> None:
            with stack.client(timeout=300) as client:
                results.append(client.score(ARCH, devices=["local-cpu"], measurement=settings))

        threads = [threading.Thread(target=score) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(results) == 3
        latencies = [r.latencies["local-cpu"] for r in results]
        assert all(lat.ok for lat in latencies), latencies
        jobs = {lat.job_id for lat in latencies if lat.provenance == "MEASURED"}
        assert len(jobs) == 1, latencies  # later arrivals joined it, or read the store after it
        # The store's count; the measurement is stored as the job completes, which may trail
        # the answer by a moment.
        deadline = time.time() + 10
        with stack.client() as client:
            while True:
                (device,) = [d for d in client.devices() if d.device_class == "local-cpu"]
                if device.measurements_done or time.time() > deadline:
                    break
                time.sleep(0.1)
        assert device.measurements_done == 1


def test_predictor_answers_when_no_agent_is_online_also_after_a_restart() -> None:
    hw_csv = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
    table = ReplayTable(hw_csv, "raspi4")
    # The transfer prior answers a class from a handful of measurements; a dozen are plenty.
    archs = list(table.latency_ms)[:17]
    train, unseen = archs[:12], archs[12:]
    with LocalStack(agents={}) as stack:
        agent = stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv",
                                                   str(hw_csv), "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        with stack.client(timeout=300) as client:
            for arch in train:  # measured, stored, and fed to the predictor
                assert client.score(arch, [], ["raspi4"]).latencies["raspi4"].ok
            stack.terminate(agent)
            deadline = time.monotonic() + 30
            while [d.agents_online for d in client.devices() if d.device_class == "raspi4"] != [0]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            lat = client.score(unseen[0], [], ["raspi4"], allow_predicted=True).latencies["raspi4"]
            assert lat.ok and lat.provenance == "PREDICTED" and lat.uncertainty_ms > 0
            assert 0.2 < lat.median_ms / table.latency_ms[unseen[0]] < 5
            # Without allow_predicted the request waits for an agent and times out per item.
            late = client.score(unseen[0], [], ["raspi4"], latency_timeout=1).latencies["raspi4"]
            assert late.code.name == "DEADLINE_EXCEEDED"

        port = stack.port
        stack.stop_server()
        stack.start_server(port)  # no agent registers: the class is known from the store only
        with stack.client(timeout=300) as client:
            lat = client.score(unseen[1], [], ["raspi4"], allow_predicted=True).latencies["raspi4"]
            assert lat.ok and lat.provenance == "PREDICTED"
            # Without allow_predicted the job waits for an agent of the class (known from the
            # store: its agents may be reconnecting) and times out per item; a class never
            # seen is unknown.
            late = client.score(unseen[1], [], ["raspi4"], latency_timeout=1).latencies["raspi4"]
            assert late.code.name == "DEADLINE_EXCEEDED"
            with pytest.raises(EdgescoreError) as err:
                client.score(unseen[1], [], ["pixel3"])
            assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_a_job_in_flight_at_shutdown_is_resumed_after_the_restart() -> None:
    settings = {**QUICK_MEASUREMENT, "min_seconds": 4.0, "max_seconds": 10.0}
    with LocalStack(agents={"local-cpu": 1}) as stack:
        def busy() -> bool:
            with stack.client() as client:
                return any(d.agents_busy for d in client.devices())

        caller = threading.Thread(target=lambda: _score_ignoring_errors(stack, settings))
        caller.start()
        deadline = time.monotonic() + 120
        while not busy():  # the job is on the agent
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = stack.port
        stack.stop_server()  # the measurement is lost with the server
        caller.join(60)
        stack.start_server(port)
        stack.wait_for_agents({"local-cpu": 1})
        with stack.client(timeout=300) as client:
            deadline = time.monotonic() + 120
            while [d.measurements_done for d in client.devices()] != [1]:
                assert time.monotonic() < deadline, "the unfinished job was not run again"
                time.sleep(0.2)
            result = client.score(ARCH, devices=["local-cpu"], measurement=settings)
        assert result.latencies["local-cpu"].provenance == "CACHED"


def _score_ignoring_errors(stack: LocalStack, settings: dict) -> None:
    try:
        with stack.client(timeout=120) as client:
            client.score(ARCH, devices=["local-cpu"], measurement=settings)
    except EdgescoreError:
        pass  # the server went away under the call: that is the point


def test_unfinished_jobs_are_resumed_after_every_restart_not_only_the_first() -> None:
    # In process: a job left running, then a server that restarts twice before any agent comes.
    from edgescore.server.compute.plane import Caller
    from edgescore.server.compute.units import ArchRef
    from edgescore.server.export.exporter import Exporter
    from edgescore.server.fleet.exports import Exports
    from edgescore.server.fleet.fleet import Fleet
    from edgescore.server.fleet.latency import LatencyService
    from edgescore.server.fleet.measurement import Target, resolve_measurement
    from edgescore.server.spaces.nb201 import SPACE
    from edgescore.server.store import open_store
    from edgescore.v1 import agent_pb2, common_pb2

    async def export_here(unit, caller):  # in process, as a compute worker would
        arch = SPACE.parse(unit.arch.spec)
        return Exporter().export(arch, unit.fmt, unit.precision, unit.batch_size, unit.fp32)

    def service(store) -> tuple[Fleet, LatencyService]:
        fleet = Fleet(heartbeat_interval=60, missed_heartbeats=3)
        return fleet, LatencyService(fleet, Exports(export_here), store=store)

    async def scenario() -> None:
        with open_store(":memory:") as store:
            fleet, latency = service(store)
            arch = SPACE.parse(ARCH)
            target = Target("pi", resolve_measurement(common_pb2.MeasurementSettings(), arch,
                                                      "settings"))
            waiting = asyncio.create_task(latency.measure(
                arch, ArchRef("nb201", ARCH), target, 60.0, time.monotonic() + 60,
                Caller("test")))
            while not store.jobs():
                await asyncio.sleep(0.05)
            (record,) = store.jobs()
            assert store.start_job(record.job_id, "pi-1")  # on a board when the server went down
            fleet.close()
            with pytest.raises(Exception, match="shutting down"):
                await waiting
            for _restart in range(2):
                fleet, latency = service(store)
                assert await latency.resume_jobs() == 1
                assert store.get_job(record.job_id).state == "queued"
                agent = fleet.register(agent_pb2.Capabilities(device_class="pi", hostname="h"))
                assert agent.outbox.get_nowait().job.job_id == record.job_id  # under its own id
                fleet.close()

    asyncio.run(scenario())


# Node 1 reaches nothing (1->2 and 1->3 are none), so the edge 0->1 is dead: two spellings, two
# hashes (NB201's own network keeps the dead convolution), one pruned artifact.
DEAD_EDGE_SPELLINGS = (
    "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",
)


def test_spellings_of_one_artifact_share_a_timed_measurement_not_a_replayed_one() -> None:
    """A board times the artifact, so its measurement serves every spelling that exports to it;
    the replay agent looks each spelling up, and HW-NAS-Bench timed them apart (26.5 vs 12.6 ms
    on the Pi 4: its networks kept the dead convolution)."""
    csv_path = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
    table = ReplayTable(csv_path, "raspi4")
    first, second = DEAD_EDGE_SPELLINGS
    with LocalStack(agents={"local-cpu": 1}) as stack:
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(csv_path),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"local-cpu": 1, "raspi4": 1})
        with stack.client(timeout=300) as client:
            def latencies(arch: str) -> dict:
                return client.score(arch, ["params"], ["local-cpu", "raspi4"],
                                    measurement=QUICK_MEASUREMENT).latencies

            a, b, b_again = latencies(first), latencies(second), latencies(second)
            params = [client.score(s, ["params"]).proxies["params"].value
                      for s in DEAD_EDGE_SPELLINGS]
    assert params[0] > params[1]  # the hashes differ: the benchmark's #Params do
    timed_a, timed_b = a["local-cpu"], b["local-cpu"]
    assert (timed_a.provenance, timed_b.provenance) == ("MEASURED", "CACHED")
    assert timed_b.artifact_sha256 == timed_a.artifact_sha256
    assert timed_b.samples_ms == timed_a.samples_ms and timed_b.job_id == timed_a.job_id
    assert a["raspi4"].artifact_sha256 == b["raspi4"].artifact_sha256
    assert a["raspi4"].median_ms == pytest.approx(table.latency_ms[first])
    assert (b["raspi4"].provenance, b_again["raspi4"].provenance) == ("MEASURED", "CACHED")
    assert b["raspi4"].median_ms == b_again["raspi4"].median_ms == pytest.approx(
        table.latency_ms[second])


def test_each_network_shape_gets_its_own_artifact_and_measurement() -> None:
    """One cell at another resolution or class count is another network: its own export, its
    own measurement (the export cache once served the 32x32 artifact for a 64x64 request)."""
    with LocalStack(agents={"local-cpu": 1}) as stack, stack.client(timeout=300) as client:
        got = {}
        for classes, resolution in ((10, 32), (10, 64), (100, 32), (10, 32)):
            got.setdefault((classes, resolution), []).append(client.score(
                ARCH, ["params"], ["local-cpu"], measurement=QUICK_MEASUREMENT,
                num_classes=classes, input_resolution=resolution).latencies["local-cpu"])
    first = {shape: results[0] for shape, results in got.items()}
    assert {r.provenance for r in first.values()} == {"MEASURED"}, first
    assert len({r.artifact_sha256 for r in first.values()}) == 3
    assert first[(10, 64)].median_ms > first[(10, 32)].median_ms
    assert first[(10, 64)].settings["inputShape"] == [1, 3, 64, 64]
    again = got[(10, 32)][1]
    assert again.provenance == "CACHED" and again.artifact_sha256 == first[(10, 32)].artifact_sha256


def test_shutdown_frees_waiting_requests_and_the_restart_waits_for_the_agents() -> None:
    """A server stopped while a request waits on a latency job exits at once (it used to wait
    out the latency timeout and be killed); the SDK's retry reaches the restarted server, which
    knows the class from its store and holds the job until an agent of it is back (it used to
    answer NOT_FOUND while the agents were still reconnecting)."""
    other = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|none~2|"
    with LocalStack(agents={}) as stack:
        agent = stack.start_agent("local-cpu")
        stack.wait_for_agents({"local-cpu": 1})
        with stack.client(timeout=300) as client:
            client.score(ARCH, ["params"], ["local-cpu"], measurement=QUICK_MEASUREMENT)
        stack.terminate(agent)
        waited: list = []

        def score() -> None:
            with stack.client(timeout=300) as client:
                waited.append(client.score(other, ["params"], ["local-cpu"],
                                           measurement=QUICK_MEASUREMENT,
                                           latency_timeout=240))

        thread = threading.Thread(target=score)
        thread.start()
        time.sleep(2.0)  # the request is queued: no agent of the class is online
        port = stack.port
        started = time.monotonic()
        code = stack.stop_server()
        assert time.monotonic() - started < 10 and code == 0, code
        stack.start_server(port)
        time.sleep(1.0)  # the retried request now waits on the new server, for an agent
        assert thread.is_alive()
        stack.start_agent("local-cpu")
        thread.join(timeout=240)
        assert not thread.is_alive()
    (result,) = waited
    latency = result.latencies["local-cpu"]
    assert latency.ok and latency.provenance in ("MEASURED", "CACHED"), latency


def test_a_measurement_arriving_mid_request_leaves_the_proxies_alone() -> None:
    """The first measurement of a cell reaches the latency predictor while the same request
    builds its seeded proxy network; the predictor's features once built real networks (drawing
    from the global RNG) and so changed that request's values (naswot 1627.44 vs 1627.59)."""
    from edgescore.server.proxies import engine
    from edgescore.server.proxies.base import SettingsOverride
    from edgescore.server.spaces import registry

    hw_csv = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
    proxies = ["synflow", "naswot"]
    space, arch = registry.parse_arch("nb201", ARCH, 0, 0)
    expected = {o.name: o.value for o in engine.compute_proxies(
        space, arch, [(p, SettingsOverride(seed=0)) for p in proxies])}
    with LocalStack(agents={}) as stack:
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(hw_csv),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        with stack.client(timeout=300) as client:
            for _ in range(2):  # the first exports and measures; the second is all warm
                result = client.score(ARCH, proxies, ["raspi4"], seed=0, no_cache=True)
                assert result.latencies["raspi4"].ok
                assert {p: result.proxies[p].value for p in proxies} == expected
