"""The hardware-aware study: hand-made cases, and the CLI end to end on replay agents."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

from edgescore.evaluation import hw_study

HW_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
EVAL_CSV = (Path(__file__).resolve().parents[1] / "docs" / "evaluation"
            / "nb201-cifar10-1000-seed42" / "per_arch.csv")


def test_budget_feasible_set_pick_gap_and_tau_by_hand() -> None:
    accuracy = [90.0, 80.0, 70.0, 60.0]
    latency = {"dev": [4.0, 3.0, 2.0, 1.0]}  # the better, the slower
    values = {"good": [9.0, 8.0, 7.0, 6.0], "bad": [1.0, 2.0, 3.0, 4.0],
              "partial": [None, None, None, 5.0]}
    rows = {r.proxy: r for r in hw_study.study(accuracy, values, latency, quantiles=[50])}
    good, bad, partial = rows["good"], rows["bad"], rows["partial"]
    assert good.budget_ms == 2.5 and good.feasible == 2  # archs 2 and 3
    assert (good.picked_index, good.gap, good.tau) == (2, 0.0, 1.0)
    assert (bad.picked_index, bad.gap, bad.tau) == (3, 10.0, -1.0)
    assert partial.picked_index == 3 and math.isnan(partial.tau)  # one valid pair only
    # A latency exactly at the budget is feasible.
    edge = hw_study.study(accuracy, {"good": values["good"]}, {"dev": [4.0, 2.0, 2.0, 1.0]},
                          quantiles=[50])[0]
    assert edge.budget_ms == 2.0 and edge.feasible == 3 and edge.picked_index == 1


def test_ensemble_is_the_mean_rank() -> None:
    table = hw_study.ProxyTable([0, 1, 2], ["a", "b", "c"], [1.0, 2.0, 3.0],
                                {"x": [1.0, 2.0, 3.0], "y": [3.0, 1.0, 2.0], "z": [None, 1.0, 2.0]})
    name = hw_study.add_ensemble(table, ["x", "y"])
    assert name == "ensemble(x+y)" and table.values[name] == [2.0, 1.5, 2.5]
    assert table.values[hw_study.add_ensemble(table, ["x", "z"])][0] is None


@pytest.mark.slow
def test_cli_runs_the_study_on_replay_agents_through_the_server(tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = [sys.executable, "-m", "edgescore.cli", "eval", "hw-study",
            "--proxies-csv", str(EVAL_CSV), "--hw-csv", str(HW_CSV), "--archs", "24",
            "--devices", "raspi4,edgetpu", "--proxies", "synflow,params,naswot,jacob_cov",
            "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "raspi4 p50" in done.stdout and (out / "study.png").stat().st_size > 0
    served = list(csv.DictReader((out / "study.csv").open()))
    assert {r["device"] for r in served} == {"raspi4", "edgetpu"}
    # The server's answers are the table's values: the offline study agrees row for row.
    offline = tmp_path / "offline"
    done = subprocess.run([*args[:-1], str(offline), "--offline"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert served == list(csv.DictReader((offline / "study.csv").open()))


@pytest.mark.parametrize("extra, message", [
    (["--devices", "toaster"], "unknown device(s) toaster"),
    (["--proxies", "nonsense"], "has no column for nonsense"),
    (["--hw-csv", "/nonexistent/hw.csv"], "HW-NAS-Bench table not found"),
])
def test_cli_bad_input_is_a_clear_error_and_exit_2(tmp_path: Path, extra, message) -> None:
    args = [sys.executable, "-m", "edgescore.cli", "eval", "hw-study", "--offline",
            "--proxies-csv", str(EVAL_CSV), "--hw-csv", str(HW_CSV), "--out", str(tmp_path)]
    done = subprocess.run([*args, *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "study.csv").exists()
