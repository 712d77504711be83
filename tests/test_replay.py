"""The HW-NAS-Bench replay agent answers through the real server and client with the exact
latencies HW-NAS-Bench measured, from either table."""

from __future__ import annotations

import csv

import grpc
import pytest
from conftest import SHARED

from edgescore.client.launcher import LocalStack
from edgescore.device_agent.replay import ReplayTable, normalise_nb201
from edgescore.v1 import agent_pb2

pytestmark = pytest.mark.slow

NB201 = SHARED / "data" / "nb201"
DEV = NB201 / "hw_nas_bench_c10_dev.csv"
OFFICIAL = NB201 / "hw_nas_bench_official_examples.csv"


def official_c10_rows() -> list[dict[str, str]]:
    with OFFICIAL.open() as f:
        return [r for r in csv.DictReader(f) if r["dataset"] == "cifar10"]


def test_table_loads_both_files_and_reports_unknown_archs() -> None:
    official = ReplayTable(OFFICIAL, "raspi4")
    dev = ReplayTable(DEV, "raspi4")
    row0 = official_c10_rows()[0]
    assert row0["index"] == "0"
    assert dev.latency_ms[normalise_nb201(row0["arch"])] == float(row0["raspi4_latency"])
    job = agent_pb2.Job(job_id="j", artifact=agent_pb2.Artifact(
        space="nb201", canonical_arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    missing = [a for a in [job.artifact.canonical_arch] if a not in official.latency_ms]
    assert missing
    reply = official.run_job(job)
    assert reply.WhichOneof("msg") == "failure" and "no raspi4 latency" in reply.failure.detail
    with pytest.raises(ValueError):
        ReplayTable(DEV, "toaster")


@pytest.mark.parametrize("table", [OFFICIAL, DEV], ids=["official", "dev"])
def test_replay_agent_returns_official_values_through_server(table) -> None:
    rows = official_c10_rows()
    with LocalStack(agents={}) as stack:
        devices = ("raspi4", "pixel3")
        for device in devices:
            stack.start_agent(device, extra=["--replay", "hw-nas-bench", "--csv", str(table),
                                             "--device", device])
        stack.wait_for_agents({d: 1 for d in devices})
        with stack.client() as client:
            known = {normalise_nb201(a) for a in ReplayTable(table, "raspi4").latency_ms}
            for row in rows:
                if normalise_nb201(row["arch"]) not in known:
                    continue  # the dev table holds index 0 only of the three
                result = client.score(row["arch"], ["params"], list(devices))
                for device in devices:
                    lat = result.latencies[device]
                    assert lat.ok, lat.message
                    assert lat.median_ms == float(row[f"{device}_latency"])
                    assert lat.runtime == "hw-nas-bench-replay"
                    assert lat.provenance == "MEASURED"
            # An arch the table does not have is a per-item NOT_FOUND, not a failed call.
            unknown = next(a for a in ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                       "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
                           if normalise_nb201(a) not in known)
            result = client.score(unknown, ["params"], ["raspi4"])
            lat = result.latencies["raspi4"]
            assert lat.code == grpc.StatusCode.NOT_FOUND and lat.failure_kind == "NOT_FOUND"
            # A known cell at another resolution or class count is another network.
            known_arch = next(r["arch"] for r in rows if normalise_nb201(r["arch"]) in known)
            for shape in ({"input_resolution": 64}, {"num_classes": 100}):
                lat = client.score(known_arch, ["params"], ["raspi4"], **shape).latencies["raspi4"]
                assert lat.code == grpc.StatusCode.NOT_FOUND, (shape, lat)
                assert "CIFAR-10 networks (10 classes, 32x32 input)" in lat.message
