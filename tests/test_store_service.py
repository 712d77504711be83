"""The store behind the real server: answers survive a restart, identical requests share a job."""

from __future__ import annotations

import os
import random
import threading

import pytest
from conftest import QUICK_MEASUREMENT

from edgescore.client.launcher import LocalStack

pytestmark = pytest.mark.slow

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
PG_URL = os.environ.get("EDGESCORE_TEST_POSTGRES_URL", "")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restart_serves_the_second_request_from_the_store(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("EDGESCORE_TEST_POSTGRES_URL not set (tools/with_postgres.sh sets it)")
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
        assert device.measurements_done == 0, "the restarted server sent no new job"


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
        with stack.client() as client:
            (device,) = [d for d in client.devices() if d.device_class == "local-cpu"]
        assert device.measurements_done == 1
