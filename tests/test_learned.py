"""Few-label ranking: NB201 graph features, the ranker, `edgescore eval learned`, and the
`learned` proxy through a real server with a small label set."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import NB201_ACCURACY, nb201_rows

from edgescore.evaluation.cli import evaluate
from edgescore.evaluation.inputs import EvalError
from edgescore.evaluation.learned import read_tables, with_truth
from edgescore.server.scoring.graph_features import (
    NO_SHORTEST_PATH,
    feature_names,
    nb201_graph_features,
)
from edgescore.server.scoring.label_sets import LabelSetError, read_label_set
from edgescore.server.scoring.learned import LearnedError, LearnedRanker
from edgescore.server.scoring.ranks import kendall_tau

ROOT = Path(__file__).resolve().parents[1]
PER_ARCH = ROOT / "docs" / "evaluation" / "nb201-cifar10-1000-seed42" / "per_arch.csv"
ALL_CONV3 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
             "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
# Nodes 1 and 2 swapped (edge 1->2 is `none`): one cell, two spellings.
SPELLING_A = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
SPELLING_B = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def test_graph_features_of_known_cells() -> None:
    full = nb201_graph_features(ALL_CONV3)
    assert full["count[conv3]"] == full["live[conv3]"] == 6
    assert full["min_path[conv3]"] == 1 and full["max_path[conv3]"] == 3
    assert full["live_paths"] == full["conv_paths"] == 4 and full["conv_depth"] == 3
    assert full["min_path[skip]"] == NO_SHORTEST_PATH and full["max_path[skip]"] == -1
    # Only a dead conv (fed by nothing) and a `none` edge into the output: nothing is live.
    dead = nb201_graph_features("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")
    assert dead["count[conv3]"] == 1 and dead["live[conv3]"] == 0 and dead["live_edges"] == 0
    assert dead["min_path[none]"] == 1 and dead["max_path[none+conv3]"] == 3
    assert dead["out_degree_input[none]"] == 3 and dead["in_degree_output[none]"] == 3
    assert nb201_graph_features(SPELLING_A) == nb201_graph_features(SPELLING_B)


def test_graph_features_need_no_torch() -> None:
    code = ("import sys; from edgescore.server.scoring import graph_features as g; "
            f"g.nb201_graph_features({ALL_CONV3!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ranker_learns_an_order_and_takes_missing_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = 2 * x[:, 0] + 0.1 * rng.normal(size=120)
    x[::7, 1] = np.nan  # a failed proxy here and there
    ranker = LearnedRanker.fit(x[:40], y[:40])
    predicted = ranker.predict(x[40:])
    assert np.corrcoef(predicted, y[40:])[0, 1] > 0.8
    assert y[:40].min() <= predicted.min() and predicted.max() <= y[:40].max()
    with pytest.raises(LearnedError, match="at least"):
        LearnedRanker.fit(x[:3], y[:3])
    with pytest.raises(LearnedError, match="same accuracy"):
        LearnedRanker.fit(x[:10], np.ones(10))


def test_ranker_adds_many_weak_proxies_from_few_labels() -> None:
    # Accuracy is a sum of eight equally weak proxies: trees alone cannot build the sum from 25
    # rows; the pairwise linear part of the blend can, and graph-only features skip it.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8))
    y = x.sum(axis=1) + 0.5 * rng.normal(size=400)
    names = [f"p{k}" for k in range(8)]
    ranker = LearnedRanker.fit(x[:25], y[:25], names)
    assert kendall_tau(ranker.predict_rank(x[25:]), y[25:]) > 0.7
    graph_only = LearnedRanker.fit(x[:25, :3], y[:25], feature_names()[:3])
    assert graph_only.predict_rank(x[25:, :3]).shape == (375,)


def _write(path: Path, rows: list[dict[str, str]], proxies: list[str]) -> Path:
    fields = ["index", "arch", "accuracy", *proxies, "error", "flags", "seconds", "settings"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def split_csvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The committed run's first 150 archs as two CSVs: naswot,params in one (all rows), synflow
    in the other (10 rows fewer, as a later run on part of the sample)."""
    with PER_ARCH.open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:150]
    folder = tmp_path_factory.mktemp("learned")
    return (_write(folder / "a.csv", rows, ["naswot", "params"]),
            _write(folder / "b.csv", rows[10:], ["synflow"]))


def test_per_arch_csvs_merge_on_index(split_csvs: tuple[Path, Path]) -> None:
    table = read_tables(split_csvs)
    assert list(table.proxies) == ["naswot", "params", "synflow"] and len(table.archs) == 140
    assert any(math.isnan(v) for v in table.proxies["naswot"])  # failures stay NaN
    assert list(read_tables(split_csvs, ["synflow"]).proxies) == ["synflow"]
    with pytest.raises(EvalError, match="no column for nope"):
        read_tables(split_csvs, ["nope"])


def test_eval_learned_writes_a_report(split_csvs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = split_csvs
    result = CliRunner().invoke(evaluate, [
        "learned", "--proxies-csv", str(a), "--proxies-csv", str(b), "--labels", "20,40",
        "--seeds", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report.md").read_text()
    for row in ("| graph |", "| proxies |", "| both |", "| best proxy |"):
        assert report.count(row) == 2  # the tau and the rho table
    with (tmp_path / "learned.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 4  # N x seeds x feature sets
    both = [float(r["tau"]) for r in rows if r["features"] == "both"]
    assert all(t > 0.3 for t in both)  # far from chance even at 20 labels
    bad = CliRunner().invoke(evaluate, ["learned", "--proxies-csv", str(a), "--labels", "x"])
    assert bad.exit_code == 2


def test_another_ground_truth_is_joined_on_the_index(split_csvs: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    table = read_tables(split_csvs)
    test_acc = {int(r["index"]): float(r["c10_test"]) for r in nb201_rows()}
    joined = with_truth(table, NB201_ACCURACY, "c10_test")
    assert list(joined.accuracy) == [test_acc[i] for i in table.indices]
    assert not np.array_equal(joined.accuracy, table.accuracy)  # the CSVs hold c10valid_test
    result = CliRunner().invoke(evaluate, [
        "learned", "--proxies-csv", str(split_csvs[0]), "--labels", "20", "--seeds", "1",
        "--truth", "c10_test", "--accuracy-csv", str(NB201_ACCURACY), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Ground truth: `c10_test`" in (tmp_path / "report.md").read_text()
    short = tmp_path / "short.csv"
    with NB201_ACCURACY.open(newline="") as fh:
        kept = [r for r in csv.DictReader(fh) if int(r["index"]) != table.indices[5]]
    with short.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    with pytest.raises(EvalError, match="1 archs have no 'c10_test'"):
        with_truth(table, short, "c10_test")
    with pytest.raises(EvalError, match="lacks the column"):
        with_truth(table, NB201_ACCURACY, "nope")
    bad = CliRunner().invoke(evaluate, [
        "learned", "--proxies-csv", str(split_csvs[0]), "--labels", "20", "--seeds", "1",
        "--truth", "nope", "--accuracy-csv", str(NB201_ACCURACY), "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "lacks the column(s) nope" in bad.output


def _label_rows() -> list[dict[str, str]]:
    return [{"space": "nb201", "arch": r["arch"], "accuracy": r["c10valid_test"]}
            for r in nb201_rows()[:20]]


def test_label_set_rows_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    rows = _label_rows()[:3]
    _write_labels(path, rows)
    assert len(read_label_set(path)["nb201"]) == 3
    _write_labels(path, [*rows, {"space": "nb201", "arch": SPELLING_A, "accuracy": "90"},
                         {"space": "nb201", "arch": SPELLING_B, "accuracy": "91"}])
    with pytest.raises(LabelSetError, match=r":6: the arch of line 5 again"):
        read_label_set(path)
    _write_labels(path, [{"space": "nb201", "arch": "|nope~0|", "accuracy": "1"}])
    with pytest.raises(LabelSetError, match=r":2: "):
        read_label_set(path)


def _write_labels(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["space", "arch", "accuracy"])
        writer.writeheader()
        writer.writerows(rows)


def test_learned_proxy_through_a_server(tmp_path: Path) -> None:
    from edgescore.client.launcher import LocalStack
    from edgescore.v1 import common_pb2

    labels = tmp_path / "labels.csv"
    _write_labels(labels, _label_rows())
    learned = common_pb2.ProxyRequest(name="learned", settings=common_pb2.ProxySettings(
        extra={"proxies": "params,flops"}))
    # A cell of only skips and pools (few parameters, ~60 % in NB201) and the all-conv cell.
    weak = ("|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+"
            "|avg_pool_3x3~0|skip_connect~1|avg_pool_3x3~2|")
    with LocalStack(agents={}, server_args=["--label-set", str(labels)]) as stack, \
            stack.client(timeout=300) as client:
        values = []
        for arch in (weak, ALL_CONV3):
            result = client.score(arch, [learned])
            proxy = result.proxies["learned"]
            assert proxy.ok, proxy.message
            values.append(proxy.value)
        assert values[0] < values[1]
        accuracies = [float(r["accuracy"]) for r in _label_rows()]
        assert min(accuracies) <= values[0] and values[1] <= max(accuracies)
        other = client.score("8:8:8:8:8", [learned], space="nats_sss").proxies["learned"]
        assert other.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "no label set for space 'nats_sss'" in other.message
