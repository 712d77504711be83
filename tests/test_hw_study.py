"""The hardware-aware study: hand-made cases, and the CLI end to end on replay agents."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from edgescore.evaluation import aggregate, hw_study
from edgescore.evaluation.per_arch import ProxyTable, TableError, load_table

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


def test_aggregations_of_percentiles_by_hand() -> None:
    table = ProxyTable([0, 1, 2], ["a", "b", "c"], [1.0, 2.0, 3.0],
                       {"x": [1.0, 2.0, 3.0], "y": [3.0, 1.0, 2.0], "z": [None, 1.0, 2.0]})
    # Percentiles among 3 archs: rank / 4 -> x 25, 50, 75; y 75, 25, 50.
    name = aggregate.aggregate_column(table, "mean", ["x", "y"])
    assert name == "mean(x+y)" and table.values[name] == [50.0, 37.5, 62.5]
    logs = table.values[aggregate.aggregate_column(table, "log_rank", ["x", "y"])]
    assert logs == pytest.approx([math.log(0.25 * 0.75), math.log(0.5 * 0.25),
                                  math.log(0.75 * 0.5)])
    geo = table.values[aggregate.aggregate_column(table, "geo_mean", ["x", "y"])]
    assert geo == pytest.approx([math.sqrt(25 * 75), math.sqrt(50 * 25), math.sqrt(75 * 50)])
    # log_rank and geo_mean order archs alike; a failed member leaves the arch out.
    assert list(np.argsort(logs)) == list(np.argsort(geo))
    assert table.values[aggregate.aggregate_column(table, "mean", ["x", "z"])][0] is None


def test_member_selection_never_sees_the_report_half() -> None:
    rng = np.random.default_rng(0)
    accuracy = rng.normal(size=200)
    good = accuracy + rng.normal(scale=0.5, size=200)
    also = accuracy + rng.normal(scale=0.5, size=200)
    table = ProxyTable(list(range(200)), [str(i) for i in range(200)], list(accuracy),
                       {"good": list(good), "also": list(also),
                        "noise": list(rng.normal(size=200))})
    report = aggregate.select(table, ["good", "also", "noise"], 3, seed=1,
                              fixed=[("mean", ("good", "noise"))])
    assert report.n_selection == report.n_report == 100
    assert {c.members for c in report.best} == {("good", "also")}
    assert all(c.tau_report > report.singles[0].tau_report - 0.05 for c in report.best)
    assert report.fixed[0].tau_report < report.best[0].tau_report


def test_repeated_splits_report_each_choice_and_the_most_chosen(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    accuracy = rng.normal(size=120)
    columns = {"good": accuracy + rng.normal(scale=0.5, size=120),
               "also": accuracy + rng.normal(scale=0.5, size=120),
               "noise": rng.normal(size=120)}
    per_arch = tmp_path / "per_arch.csv"
    with per_arch.open("w") as fh:
        fh.write("index,arch,accuracy,good,also,noise,error,flags,seconds,settings\n")
        for i in range(120):
            fh.write(f"{i},a{i},{accuracy[i]},{columns['good'][i]},{columns['also'][i]},"
                     f"{columns['noise'][i]},,,0.1,k\n")
    reports = aggregate.run([per_arch], None, 2, 5, [("mean", ("good", "noise"))],
                            tmp_path / "out", log=lambda _: None, splits=3)
    assert len(reports) == 3
    assert len({r.best[0].tau_report for r in reports}) == 3  # three different splits
    text = (tmp_path / "out" / "aggregate.md").read_text()
    assert "Repeated over 3 splits (seeds 5-7)" in text
    assert "| mean (chosen per split) |" in text and "good, also (3 of 3)" in text
    assert "| mean (fixed) |" in text


def test_runs_over_the_same_archs_merge_on_the_index(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("index,arch,accuracy,x,error,flags,seconds,settings\n"
                     "5,a5,90.0,1.5,,,0.1,k\n7,a7,80.0,,x: failed,,0.1,k\n")
    second.write_text("index,arch,accuracy,y,x,error,flags,seconds,settings\n"
                      "7,a7,80.0,2.0,9.0,,,0.1,k\n")
    table = load_table([first, second])
    # The archs both runs have; a column from the first CSV that has it.
    assert table.indices == [7] and table.values == {"x": [None], "y": [2.0]}
    with pytest.raises(TableError, match="no column for w"):
        load_table([first, second], ["x", "w"])


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


def test_learned_columns_rank_by_a_ranker_fitted_on_n_labels() -> None:
    table = load_table([EVAL_CSV], ["synflow", "naswot", "params"], 300)
    names = hw_study.learned_columns(table, [60], seeds=2)
    assert names == [hw_study.learned_name(60, 0), hw_study.learned_name(60, 1)]
    accuracy = np.array(table.accuracy)
    for name in names:
        predicted = np.array(table.values[name])
        assert predicted.shape == accuracy.shape
        # Within the labelled accuracies' range, and a ranking far better than chance.
        assert accuracy.min() <= predicted.min() and predicted.max() <= accuracy.max()
        assert np.corrcoef(np.argsort(np.argsort(predicted)),
                           np.argsort(np.argsort(accuracy)))[0, 1] > 0.6
    assert table.values[names[0]] != table.values[names[1]]  # other labels, other ranker


@pytest.mark.parametrize("extra, message", [
    (["--devices", "toaster"], "unknown device(s) toaster"),
    (["--proxies", "nonsense"], "no column for nonsense"),
    (["--hw-csv", "/nonexistent/hw.csv"], "HW-NAS-Bench table not found"),
    (["--learned", "3"], "--learned 3: between 5 and"),
])
def test_cli_bad_input_is_a_clear_error_and_exit_2(tmp_path: Path, extra, message) -> None:
    args = [sys.executable, "-m", "edgescore.cli", "eval", "hw-study", "--offline",
            "--proxies-csv", str(EVAL_CSV), "--hw-csv", str(HW_CSV), "--out", str(tmp_path)]
    done = subprocess.run([*args, *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "study.csv").exists()
