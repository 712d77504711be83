"""`edgescore eval proxies`: the rank statistics, and the command end to end on a few archs."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
from conftest import NB201_ACCURACY

from edgescore import cli
from edgescore.evaluation import inputs, report, stats
from edgescore.evaluation.inputs import EvalError
from edgescore.evaluation.nb201_eval import run_eval
from edgescore.evaluation.records import EvalConfig
from edgescore.server.spaces.nb201 import SPACE

# -- statistics on hand-worked cases -------------------------------------------------------------


def test_rankdata_averages_ties() -> None:
    assert stats.rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert stats.rankdata([3, 1, 3, 3, 2]).tolist() == [4.0, 1.0, 4.0, 4.0, 2.0]
    assert stats.rankdata([]).tolist() == []


def test_spearman_hand_cases() -> None:
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # No ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with d = (1, 1, 1, 1, 0): 1 - 24/120.
    assert stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # Ties: Pearson of ranks (1, 2.5, 2.5, 4) and (1, 2, 3, 4) = 4.5 / sqrt(4.5 * 5).
    assert stats.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # Monotone transforms do not change a rank correlation.
    assert stats.spearman([1, 5, 2, 8], [0, 1, 3, 2]) == pytest.approx(
        stats.spearman([math.exp(v) for v in (1, 5, 2, 8)], [0, 1, 3, 2]))
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))  # constant side: undefined
    assert math.isnan(stats.spearman([1], [2]))


def test_kendall_hand_cases() -> None:
    assert stats.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 8 concordant, 2 discordant pairs out of 10.
    assert stats.kendall_tau([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.6)
    # tau-b with a tie in x: C - D = 5, untied pairs 5 (x) and 6 (y).
    assert stats.kendall_tau([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    # Ties on both sides: pairs (x, y) = (1,1) (1,2) (2,1) (2,2): C=1, D=1 -> 0.
    assert stats.kendall_tau([1, 1, 2, 2], [1, 2, 1, 2]) == pytest.approx(0.0)
    assert math.isnan(stats.kendall_tau([2, 2, 2], [1, 2, 3]))


def test_paired_and_ci() -> None:
    assert stats.paired([1.0, None, 3.0, math.nan], [1.0, 2.0, None, 4.0]) == ([1.0], [1.0])
    low, high = stats.spearman_ci(0.5, 20)
    assert -0.1 < low < 0.5 < high < 0.9
    assert all(math.isnan(v) for v in stats.spearman_ci(0.5, 3))
    with pytest.raises(ValueError):
        stats.spearman([1, 2], [1, 2, 3])


# -- the command end to end ----------------------------------------------------------------------


def _args(out: Path, *extra: str) -> list[str]:
    return ["eval", "proxies", "--space", "nb201", "--dataset", "cifar10", "--archs", "6",
            "--seed", "7", "--proxies", "params,flops", "--out", str(out), "--csv",
            str(NB201_ACCURACY), "--no-progress", *extra]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or ()), list(reader)


def test_eval_writes_csv_md_png_and_resumes(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "eval"
    assert cli.main(_args(out, "--workers", "2")) == 0
    printed = capsys.readouterr().out
    assert "0 already done, computing 6" in printed
    columns, rows = _read_csv(out / "per_arch.csv")
    assert columns[:5] == ["index", "arch", "accuracy", "params", "flops"]
    assert {"error", "settings"} <= set(columns)
    assert len(rows) == 6 and len({r["index"] for r in rows}) == 6
    assert all(r["params"] and r["flops"] and not r["error"] for r in rows)
    md = (out / "report.md").read_text()
    for header in ("proxy", "n valid", "ρ", "τ", "ref \\|ρ\\|", "\\|ρ\\|−ref", "NASLib ρ (n)"):
        assert f"| {header} |" in md, header
    assert "| params | 6 |" in md and "| flops | 6 |" in md
    assert (out / "correlations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Second run, same settings: nothing is computed again.
    again = run_eval(EvalConfig(dataset="cifar10", archs=6, seed=7, proxies=["params", "flops"],
                                out=out, csv=NB201_ACCURACY, progress=False), log=lambda _: None)
    assert (again.computed, again.reused) == (0, 6)
    assert sorted(r.index for r in again.rows) == sorted(int(r["index"]) for r in rows)

    # params' rho equals a direct computation on the same archs.
    direct = []
    for row in again.rows:
        network = SPACE.build(SPACE.parse(row.arch))
        direct.append(float(sum(p.numel() for p in network.parameters())))
    expected = stats.spearman(direct, [r.accuracy for r in again.rows])
    [params] = [s for s in again.summaries if s.name == "params"]
    assert params.n == 6 and params.rho == pytest.approx(expected)
    accuracy = {r["index"]: r["c10valid_test"] for r in csv.DictReader(NB201_ACCURACY.open())}
    assert all(float(accuracy[str(r.index)]) == r.accuracy for r in again.rows)


def test_eval_recomputes_only_missing_or_foreign_rows(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    # params only: no forward pass, so the bookkeeping is what this test spends its time on.
    config = EvalConfig(dataset="cifar10", archs=6, seed=7, proxies=["params"],
                        out=out, csv=NB201_ACCURACY, progress=False, workers=1)
    first = run_eval(config, log=lambda _: None)
    assert first.computed == 6
    path = out / "per_arch.csv"
    lines = path.read_text().splitlines(keepends=True)
    # Two rows lost, one cut short mid-write (an interrupted run).
    path.write_text("".join(lines[:-3]) + lines[-3][:20])
    assert run_eval(config, log=lambda _: None).computed == 3
    # Another proxy seed: no row may be reused.
    other = run_eval(dataclasses.replace(config, seed=8), log=lambda _: None)
    assert other.computed == 6


def test_eval_other_datasets_use_their_class_count_and_anchors(tmp_path: Path) -> None:
    run = run_eval(EvalConfig(dataset="ImageNet16-120", archs=3, seed=1,
                              proxies=["params"], out=tmp_path / "in16",
                              csv=NB201_ACCURACY, progress=False, workers=1), log=lambda _: None)
    assert run.spec.accuracy_column == "in16_test" and run.spec.input_resolution == 16
    for row in run.rows:
        net = SPACE.build(SPACE.parse(row.arch, 120, 16))
        assert row.values["params"] == sum(p.numel() for p in net.parameters())
        assert net.classifier.out_features == 120
    c100 = run_eval(EvalConfig(dataset="cifar100", archs=4, seed=1, proxies=["params", "flops"],
                               out=tmp_path / "c100", csv=NB201_ACCURACY, progress=False,
                               workers=1, within_naslib=True), log=lambda _: None)
    summary = {s.name: s for s in c100.summaries}
    # Deeplite's Kendall tau for `macs` is our `flops` (MACs).
    assert summary["flops"].ref_tau.value == pytest.approx(0.567)
    assert summary["params"].ref_tau.value == pytest.approx(0.531)
    assert summary["params"].naslib_n == 4  # sampled among NASLib's archs
    # NASLib computed params for the same CIFAR-100 networks: the ranking agrees.
    assert summary["params"].naslib_rho == pytest.approx(1.0)


def test_eval_input_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = dict(archs=3, out=tmp_path, csv=NB201_ACCURACY, progress=False, workers=1)
    with pytest.raises(EvalError, match="unknown proxy"):
        run_eval(EvalConfig(proxies=["nope"], **base))
    with pytest.raises(EvalError, match="unknown dataset"):
        run_eval(EvalConfig(dataset="mnist", **base))
    with pytest.raises(EvalError, match="--archs"):
        run_eval(EvalConfig(**{**base, "archs": 10**6}))
    # Installed outside the checkout: the data file must be named.
    monkeypatch.setattr(inputs, "REPO_ROOT", tmp_path / "site-packages" / "edgescore")
    with pytest.raises(EvalError, match="--csv"):
        run_eval(EvalConfig(**{**base, "csv": None}))


def test_naslib_names_and_sentinels(tmp_path: Path) -> None:
    path = tmp_path / "zc.csv"
    path.write_text("index,arch,dataset,nwot,jacov,params\n"
                    "1,a,cifar10,5.0,-100000000.0,3\n2,b,cifar100,1,1,1\n")
    scores = report.read_naslib(path, "cifar10")
    assert scores == {1: {"nwot": 5.0, "params": 3.0}}  # -1e8 is NASLib's failure marker
    assert report.NASLIB_NAMES["naswot"] == "nwot" and report.NASLIB_NAMES["jacob_cov"] == "jacov"



@pytest.mark.parametrize("args, message", [
    (["proxies", "--extra", "swap-inits=4"], "expected PROXY:KEY=VALUE"),
    (["proxies", "--batch", "vkdnw=0"], "expected PROXY=N"),
    (["proxies", "--proxies", "params", "--extra", "swap:inits=4", "--archs", "1"],
     "settings for proxies not evaluated: swap"),
    (["aggregate", "--proxies-csv", "x.csv", "--fixed", "median:a+b"], "expected METHOD:a+b"),
    (["hw-study", "--offline", "--aggregate", "mean:synflow"], "expected METHOD:a+b"),
])
def test_eval_option_errors_exit_2_with_the_reason(tmp_path: Path, args, message) -> None:
    from click.testing import CliRunner

    from edgescore.evaluation.cli import evaluate

    done = CliRunner().invoke(evaluate, [*args, *(["--out", str(tmp_path / "o")]
                                                  if args[0] != "hw-study" else [])])
    assert done.exit_code == 2 and message in done.output, done.output
