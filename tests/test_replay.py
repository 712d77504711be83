"""The replay agent answers through the real server and client with the exact latencies
HW-NAS-Bench measured (from either of its tables) and HELP's 27 device settings (NB201, FBNet)."""

from __future__ import annotations

import csv

import grpc
import pytest
from conftest import SHARED

from edgescore.client.launcher import LocalStack
from edgescore.device_agent.config import AgentConfig
from edgescore.device_agent.main import _replay
from edgescore.device_agent.replay import (
    HELP_FBNET,
    HELP_NB201,
    HW_NAS_BENCH_DEV,
    HW_NAS_BENCH_OFFICIAL,
    ReplayTable,
    detect_format,
    nb201_key,
)
from edgescore.v1 import agent_pb2, common_pb2

pytestmark = pytest.mark.slow

NB201 = SHARED / "data" / "nb201"
DEV = NB201 / "hw_nas_bench_c10_dev.csv"
OFFICIAL = NB201 / "hw_nas_bench_official_examples.csv"
HELP = NB201 / "help_latency_27devices_dev.csv"
HELP_FB = SHARED / "data" / "fbnet" / "help_latency_27devices_dev.csv"
# NB201 index 0, the first row of every NB201 table.
ARCH0 = ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
         "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")


def official_c10_rows() -> list[dict[str, str]]:
    with OFFICIAL.open() as f:
        return [r for r in csv.DictReader(f) if r["dataset"] == "cifar10"]


def test_table_loads_both_files_and_reports_unknown_archs() -> None:
    official = ReplayTable(OFFICIAL, "raspi4")
    dev = ReplayTable(DEV, "raspi4")
    row0 = official_c10_rows()[0]
    assert row0["index"] == "0"
    assert dev.latency_ms[nb201_key(row0["arch"])] == float(row0["raspi4_latency"])
    job = agent_pb2.Job(job_id="j", artifact=agent_pb2.Artifact(
        space="nb201", canonical_arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    missing = [a for a in [job.artifact.canonical_arch] if a not in official.latency_ms]
    assert missing
    reply = official.run_job(job)
    assert reply.WhichOneof("msg") == "failure" and "no raspi4 latency" in reply.failure.detail
    with pytest.raises(ValueError):
        ReplayTable(DEV, "toaster")


def header(path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


def first_row(path) -> dict[str, str]:
    with path.open(newline="") as f:
        return next(csv.DictReader(f))


def job(space: str, arch: str, classes: int = 0, batch: int = 1,
        size: tuple[int, int] = (32, 32)) -> agent_pb2.Job:
    return agent_pb2.Job(
        job_id="j", artifact=agent_pb2.Artifact(space=space, canonical_arch=arch,
                                                num_classes=classes),
        settings=common_pb2.MeasurementSettings(batch_size=batch, warmup_runs=10,
                                                input_shape=[batch, 3, *size]))


def failure(reply: agent_pb2.AgentMessage) -> str:
    assert reply.WhichOneof("msg") == "failure", reply
    assert reply.failure.kind == common_pb2.NOT_FOUND
    return reply.failure.detail


def test_the_header_says_which_table() -> None:
    assert detect_format(header(DEV)) is HW_NAS_BENCH_DEV
    assert detect_format(header(OFFICIAL)) is HW_NAS_BENCH_OFFICIAL
    assert detect_format(header(HELP)) is HELP_NB201
    assert detect_format(header(HELP_FB)) is HELP_FBNET
    assert [(f.source, f.space) for f in (HELP_NB201, HELP_FBNET)] == [("help", "nb201"),
                                                                       ("help", "fbnet")]
    with pytest.raises(ValueError, match="not a HW-NAS-Bench or HELP latency table"):
        detect_format(header(NB201 / "accuracy_dev.csv"))
    # --replay names the source; a file of the other one is refused, naming what it is.
    with pytest.raises(ValueError, match="is a HELP table, not a hw-nas-bench one"):
        ReplayTable(HELP, "raspi4", "hw-nas-bench")
    with pytest.raises(ValueError, match="is a HW-NAS-Bench table, not a help one"):
        ReplayTable(DEV, "raspi4", "help")


def test_help_nb201_replays_the_row_of_the_arch() -> None:
    row = first_row(HELP)
    assert (row["index"], row["arch"]) == ("0", ARCH0)
    raspi4, pixel3 = ReplayTable(HELP, "raspi4", "help"), ReplayTable(HELP, "pixel3")
    assert len(raspi4.latency_ms) == 5000 and raspi4.space == "nb201" and raspi4.batch == 1
    # HELP's raspi4 and pixel3 are HW-NAS-Bench's values (pixel3: 3.6058499999999998).
    assert raspi4.latency_of(ARCH0) == 10.481976820010459
    assert pixel3.latency_of(ARCH0) == pytest.approx(3.60585, rel=1e-15)
    reply = raspi4.run_job(job("nb201", ARCH0, classes=10))
    result = reply.result
    assert result.stats.median_ms == result.stats.mean_ms == 10.481976820010459
    assert (result.runtime, result.execution_provider) == ("help-replay", "help:raspi4")
    assert result.runtime_version == HELP.name
    assert (result.settings.batch_size, result.settings.warmup_runs) == (1, 10)
    info = raspi4.runtime_info()
    assert (info.name, list(info.execution_providers), info.answers_by_architecture) == (
        "help-replay", ["raspi4"], True)
    # The edges of a node may come in any order; the table's row is still found.
    shuffled = ARCH0.replace("nor_conv_1x1~0|skip_connect~1|skip_connect~2",
                             "skip_connect~2|nor_conv_1x1~0|skip_connect~1")
    assert raspi4.run_job(job("nb201", shuffled)).result.stats.median_ms == 10.481976820010459


def test_help_fbnet_replays_by_arch_str() -> None:
    rows = [first_row(HELP_FB)]
    arch = rows[0]["arch_str"]
    assert len(arch.split(" ")) == 22
    table = ReplayTable(HELP_FB, "raspi4", "help")
    assert (table.space, table.batch, len(table.latency_ms)) == ("fbnet", 1, 2500)
    # The fbnet space's spec is the op names joined by single spaces; other whitespace is read
    # the same.
    spaced = "  " + arch.replace(" ", " \t ", 3) + "\n"
    for spelling in (arch, spaced):
        reply = table.run_job(job("fbnet", spelling, classes=100))
        assert reply.result.stats.median_ms == float(rows[0]["raspi4_ms"]), spelling
    # FBNet networks are CIFAR-100's: 10 classes or another input size is another network.
    for bad in (job("fbnet", arch, classes=10), job("fbnet", arch, size=(64, 64))):
        assert "CIFAR-100 networks (100 classes, 32x32 input)" in failure(table.run_job(bad))
    # An NB201 job is not the FBNet table's, nor an FBNet job the NB201 table's.
    assert "no raspi4 latency for this nb201 architecture" in failure(table.run_job(
        job("nb201", ARCH0)))
    assert "no raspi4 latency for this fbnet architecture" in failure(
        ReplayTable(HELP, "raspi4").run_job(job("fbnet", arch)))


@pytest.mark.parametrize(("path", "device", "batch"),
                         [(HELP, "titan_rtx_256", 256), (HELP_FB, "titan_rtx_64", 64),
                          (HELP, "1080ti_32", 32), (HELP, "titan_rtx_1", 1),
                          (HELP, "gold_6226", 1), (HELP, "essential_ph_1", 1)])
def test_a_help_column_answers_its_own_batch_only(path, device, batch) -> None:
    table = ReplayTable(path, device, "help")
    assert table.batch == batch
    space, key = ("nb201", "arch") if path == HELP else ("fbnet", "arch_str")
    row = first_row(path)
    result = table.run_job(job(space, row[key], batch=batch)).result
    assert result.stats.median_ms == float(row[f"{device}_ms"])
    assert result.settings.batch_size == batch and result.settings.input_shape[0] == batch
    for other in {1, 32, 256} - {batch}:
        detail = failure(table.run_job(job(space, row[key], batch=other)))
        assert f"measured at batch {batch}, not batch {other}" in detail, detail
    # Batch 0 is the server's default, batch 1; the result says which batch it is.
    unset = job(space, row[key], batch=0)
    del unset.settings.input_shape[:]
    if batch == 1:
        assert table.run_job(unset).result.settings.batch_size == 1
    else:
        assert f"measured at batch {batch}, not batch 1" in failure(table.run_job(unset))


def test_hw_nas_bench_is_batch_1() -> None:
    table = ReplayTable(DEV, "raspi4")
    assert table.run_job(job("nb201", ARCH0)).result.settings.batch_size == 1
    assert "measured at batch 1, not batch 8" in failure(table.run_job(job("nb201", ARCH0,
                                                                           batch=8)))


def test_unknown_devices_and_sources_list_the_known_ones() -> None:
    for path, known in ((HELP, "titan_rtx_256"), (HELP_FB, "titan_rtx_64"), (DEV, "edgegpu")):
        with pytest.raises(ValueError, match=f"unknown .* device 'toaster'.*{known}"):
            ReplayTable(path, "toaster")
    with pytest.raises(ValueError) as exc:
        _replay(AgentConfig(replay="help", csv=str(HELP_FB), device="titan_rtx_256"))
    assert "1080ti_64" in str(exc.value) and "gold_6226" in str(exc.value)
    with pytest.raises(ValueError, match="known: hw-nas-bench, help"):
        _replay(AgentConfig(replay="nas-bench-x11", csv=str(HELP), device="raspi4"))
    kwargs, device_class = _replay(AgentConfig(replay="help", csv=str(HELP), device="pixel2"))
    assert device_class == "pixel2" and kwargs["runtimes"][0].name == "help-replay"


def test_help_reports_archs_it_lacks() -> None:
    table = ReplayTable(HELP, "pixel2")
    absent = next(a for a in ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                              "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
                  if nb201_key(a) not in table.latency_ms)
    assert "HELP has no pixel2 latency for this nb201 architecture" in failure(
        table.run_job(job("nb201", absent)))
    assert "no pixel2 latency" in failure(table.run_job(job("nb201", "not a cell")))


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
            known = {nb201_key(a) for a in ReplayTable(table, "raspi4").latency_ms}
            for row in rows:
                if nb201_key(row["arch"]) not in known:
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
                           if nb201_key(a) not in known)
            result = client.score(unknown, ["params"], ["raspi4"])
            lat = result.latencies["raspi4"]
            assert lat.code == grpc.StatusCode.NOT_FOUND and lat.failure_kind == "NOT_FOUND"
            # A known cell at another resolution or class count is another network.
            known_arch = next(r["arch"] for r in rows if nb201_key(r["arch"]) in known)
            for shape in ({"input_resolution": 64}, {"num_classes": 100}):
                lat = client.score(known_arch, ["params"], ["raspi4"], **shape).latencies["raspi4"]
                assert lat.code == grpc.StatusCode.NOT_FOUND, (shape, lat)
                assert "CIFAR-10 networks (10 classes, 32x32 input)" in lat.message


def test_help_replay_agent_answers_its_batch_through_server() -> None:
    row = first_row(HELP)
    with LocalStack(agents={}) as stack:
        devices = ("pixel2", "titan_rtx_32")
        for device in devices:
            stack.start_agent(device, extra=["--replay", "help", "--csv", str(HELP),
                                             "--device", device])
        stack.wait_for_agents({d: 1 for d in devices})
        with stack.client() as client:
            result = client.score(row["arch"], ["params"], list(devices))
            lat = result.latencies["pixel2"]
            assert lat.ok, lat.message
            assert lat.median_ms == float(row["pixel2_ms"]) and lat.runtime == "help-replay"
            assert lat.provenance == "MEASURED" and lat.settings["batchSize"] == 1
            # The default batch is 1: the batch-32 column does not answer it.
            lat = result.latencies["titan_rtx_32"]
            assert lat.code == grpc.StatusCode.NOT_FOUND, lat
            assert "measured at batch 32, not batch 1" in lat.message
            lat = client.score(row["arch"], ["params"], ["titan_rtx_32"],
                               measurement={"batch_size": 32}).latencies["titan_rtx_32"]
            assert lat.ok, lat.message
            assert lat.median_ms == float(row["titan_rtx_32_ms"])
            assert lat.settings["batchSize"] == 32 and lat.settings["inputShape"] == [32, 3, 32, 32]
