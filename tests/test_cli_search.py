"""The CLI against a real server: a reference search on HW-NAS-Bench replay latencies, and a
resumable batch of specs from several spaces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import NB201_ACCURACY, SHARED, onnx_bytes

from edgescore import cli
from edgescore.client.launcher import LocalStack

pytestmark = pytest.mark.slow

HW_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_evolution_search_on_replayed_raspi4_reports_the_gap(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "search"
    with LocalStack(agents={}) as stack:
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(HW_CSV),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        code = cli.main(["--server", stack.target, "search", "--space", "nb201", "--algo",
                         "evolution", "--budget", "24", "--population", "8", "--sample-size",
                         "3", "--proxy", "synflow", "--device", "raspi4", "--latency-ms", "20",
                         "--within", str(HW_CSV), "--accuracy-csv", str(NB201_ACCURACY),
                         "--hw-csv", str(HW_CSV), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    found = rows(out / "search.csv")
    # Results arrive in completion order, so the evolution's path (not its seed) varies from
    # run to run, and it may meet a degenerate cell of the table: synflow is undefined there
    # (log 0), the only failure allowed, and such a candidate is never feasible.
    failed = [r for r in found if r["error"]]
    assert all("score is 0" in r["error"] for r in failed), [r["error"] for r in failed]
    assert len(found) == 24 and len(failed) <= 5
    assert len({r["arch"] for r in found}) > 18  # evolution spends its budget on new archs
    table = {r["arch"]: float(r["c10_raspi4_latency"]) for r in rows(HW_CSV)}
    for r in found:  # the latencies are HW-NAS-Bench's own, through server and agent
        if r["error"]:
            continue  # a failed proxy ends the candidate before its latency is read
        assert float(r["latency_ms"]) == pytest.approx(table[r["arch"]], rel=1e-6)
        assert r["feasible"] == str(int(table[r["arch"]] <= 20))
    assert (out / "pareto.png").stat().st_size > 10_000
    assert "best feasible" in printed and "gap" in printed
    assert (out / "summary.txt").read_text().strip() in printed


def test_batch_mixes_spaces_and_resumes(tmp_path: Path) -> None:
    specs = tmp_path / "specs.jsonl"
    nb101 = {"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
             "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"]}
    lines = [{"id": f"a{i}", "arch": r["arch"]} for i, r in enumerate(rows(HW_CSV)[:4])]
    lines += [{"id": "s", "space": "nats_sss", "arch": "8:16:24:32:40"},
              {"id": "n", "space": "nb101", "arch": nb101},
              {"id": "bad", "arch": "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"}]
    specs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.csv"
    with LocalStack(agents={}) as stack:
        args = ["--server", stack.target, "batch", str(specs), "--out", str(out),
                "--proxies", "params,synflow", "--no-progress"]
        assert cli.main(args) == 1  # "bad" failed (every row is still written)
        first = rows(out)
        assert sorted(r["id"] for r in first) == sorted(line["id"] for line in lines)
        by_id = {r["id"]: r for r in first}
        assert "INVALID_ARGUMENT" in by_id["bad"]["error"] and not by_id["s"]["error"]
        assert by_id["n"]["space"] == "nb101" and float(by_id["n"]["params"]) > 0
        # Stop after five rows (as a killed batch leaves it): the rerun scores only the rest.
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, list(first[0]))
            writer.writeheader()
            writer.writerows(first[:5])
        # "bad" is retried (its request failed: no answer to keep) and fails again.
        assert cli.main(args) == 1
        # One spec from a JSON file, one ONNX file: the score command's other inputs.
        spec = tmp_path / "cell.json"
        spec.write_text(json.dumps(nb101))
        assert cli.main(["--server", stack.target, "score", "--space", "nb101", "--spec",
                         str(spec), "--proxies", "params"]) == 0
        model = tmp_path / "net.onnx"
        model.write_bytes(_tiny_onnx())
        assert cli.main(["--server", stack.target, "score", "--onnx", str(model), "--proxies",
                         "params,flops", "--json"]) == 0
    again = rows(out)
    assert sorted(r["id"] for r in again) == sorted(line["id"] for line in lines)
    assert {r["id"]: r["params"] for r in again} == {r["id"]: r["params"] for r in first}


def _tiny_onnx() -> bytes:
    import torch
    from torch import nn

    return onnx_bytes(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(4, 2)), torch.zeros(1, 3, 8, 8))


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n")
    assert cli.main(["batch", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    assert cli.main(["search", "--objective", "constraint", "--budget", "3"]) == 2
    assert cli.main(["score"]) == 2  # no --arch / --spec / --onnx
