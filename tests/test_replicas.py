"""Two server replicas on one PostgreSQL store share the latency job queue: an agent connected to
one measures what a request to the other asked for, and a replica killed mid-job loses nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import PG_MISSING, PG_URL, QUICK_MEASUREMENT, postgres_schema

from edgescore.client.launcher import LocalStack

pytestmark = pytest.mark.slow

ARCHS = ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
         "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|")
LEASE_S = 3.0


@pytest.fixture
def db_url() -> Iterator[str]:
    """A schema of its own in the test cluster: the queue starts empty."""
    if not PG_URL:
        pytest.skip(PG_MISSING)
    with postgres_schema() as url:
        yield url


def replica(url: str) -> LocalStack:
    return LocalStack(agents={}, server_args=["--db", url, "--replica-lease-seconds",
                                              str(LEASE_S)])


def job_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT job_id, state, attempts, owner, agent_id FROM jobs "
                            "ORDER BY created_at").fetchall()


def test_a_job_asked_of_one_replica_is_measured_by_an_agent_of_the_other(db_url: str) -> None:
    with replica(db_url) as a, replica(db_url) as b:
        a.start_agent("pi")
        a.wait_for_agents({"pi": 1})
        with b.client(timeout=120) as client:
            # B has never seen a "pi" agent itself: the store says one exists.
            result = client.score(ARCHS[0], ["params"], ["pi"], measurement=QUICK_MEASUREMENT)
            latency = result.latencies["pi"]
            assert latency.ok and latency.provenance == "MEASURED", latency.message
            assert latency.agent_id.startswith("pi-")
            again = client.score(ARCHS[0], ["params"], ["pi"], measurement=QUICK_MEASUREMENT)
            assert again.latencies["pi"].provenance == "CACHED"  # the owner stored it
        with a.client(timeout=60) as client:
            assert client.score(ARCHS[0], [], ["pi"], measurement=QUICK_MEASUREMENT
                                ).latencies["pi"].provenance == "CACHED"
    ((_, state, attempts, _, agent),) = job_rows(db_url)
    assert (state, attempts, agent) == ("done", 1, latency.agent_id)


def test_identical_requests_at_two_replicas_share_one_job(db_url: str) -> None:
    with replica(db_url) as a, replica(db_url) as b:
        first = b.start_agent("pi")  # the class becomes known to the store, then goes offline
        b.wait_for_agents({"pi": 1})
        b.terminate(first)
        results: list = []

        def score(stack: LocalStack) -> None:
            with stack.client(timeout=120) as client:
                results.append(client.score(ARCHS[1], [], ["pi"], latency_timeout=90,
                                            measurement=QUICK_MEASUREMENT))

        threads = [threading.Thread(target=score, args=(s,)) for s in (a, b, a)]
        for t in threads:
            t.start()
        time.sleep(3.0)  # all three wait: no agent of the class yet
        b.start_agent("pi")
        for t in threads:
            t.join(120)
    assert len(results) == 3
    latencies = [r.latencies["pi"] for r in results]
    assert all(lat.ok and lat.provenance == "MEASURED" for lat in latencies), [
        (lat.provenance, lat.code, lat.message) for lat in latencies]
    rows = job_rows(db_url)
    assert len({lat.job_id for lat in latencies}) == 1, (latencies, rows)  # one job, 3 requests
    assert len(rows) == 1, rows


def test_a_replica_killed_mid_job_loses_nothing(db_url: str) -> None:
    slow = {**QUICK_MEASUREMENT, "min_seconds": 6.0, "max_seconds": 20.0}
    with replica(db_url) as a, replica(db_url) as b:
        a.start_agent("pi")
        a.wait_for_agents({"pi": 1})
        results: list = []

        def score() -> None:
            with b.client(timeout=180) as client:
                results.append(client.score(ARCHS[1], [], ["pi"], measurement=slow,
                                            latency_timeout=150))

        waiting = threading.Thread(target=score)
        waiting.start()
        deadline = time.monotonic() + 60
        while not any(row[1] == "running" for row in job_rows(db_url)):
            assert time.monotonic() < deadline, job_rows(db_url)
            time.sleep(0.2)
        a.server.kill()  # mid-measurement: no drain, no goodbye
        a.server.wait()
        b.start_agent("pi")  # the job's lease runs out and B's agent takes it
        waiting.join(150)
        assert not waiting.is_alive()
    (result,) = results
    latency = result.latencies["pi"]
    assert latency.ok and latency.provenance == "MEASURED", latency.message
    ((_, state, attempts, _, agent),) = job_rows(db_url)
    assert state == "done" and attempts == 2 and agent == latency.agent_id
