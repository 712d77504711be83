"""`edgescore search --algo nsga2` against a real server and a HW-NAS-Bench replay agent: a small
NSGA-II study over NB201's dev split, its Pareto front checked against its trials, and the same
command again with `--storage` continuing the study."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from conftest import NB201_ACCURACY, SHARED

from edgescore import cli
from edgescore.client.launcher import LocalStack

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.slow

HW_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
STUDY = "edgescore-nb201-nsga2-synflow-raspi4-pareto-seed3"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def dominates(a: list[float], b: list[float]) -> bool:
    """(proxy up, latency down)."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def test_nsga2_study_on_replayed_raspi4_then_resumed(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out, storage = tmp_path / "search", f"sqlite:///{tmp_path / 'study.db'}"
    with LocalStack(agents={}) as stack:
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(HW_CSV),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        args = ["--server", stack.target, "search", "--space", "nb201", "--algo", "nsga2",
                "--population", "4", "--seed", "3", "--proxy", "synflow", "--device", "raspi4",
                "--within", str(HW_CSV), "--accuracy-csv", str(NB201_ACCURACY), "--hw-csv",
                str(HW_CSV), "--storage", storage, "--out", str(out), "--no-progress",
                "--max-in-flight", "2"]
        assert cli.main([*args, "--budget", "6"]) == 0
        first_printed = capsys.readouterr().out
        first = rows(out / "search.csv")
        assert cli.main([*args, "--budget", "3"]) == 0
        printed = capsys.readouterr().out
    assert "Pareto front (study.best_trials" in first_printed and "hypervolume" in first_printed
    assert (out / "pareto.png").stat().st_size > 10_000
    # The second run added 3 evaluations to the 6 of the first: 9 distinct archs in all.
    found = rows(out / "search.csv")
    assert len(first) == 6 and len(found) == 9 and found[:6] == first
    assert len({r["arch"] for r in found}) == 9
    before = re.search(r"\((\d+) before this run\)", printed)
    assert before and int(before.group(1)) > 0  # the second run continued the first's study
    table = {r["arch"]: float(r["c10_raspi4_latency"]) for r in rows(HW_CSV)}
    for r in found:  # only dev-split archs, with HW-NAS-Bench's own latencies
        assert r["arch"] in table
        if not r["error"]:
            assert float(r["latency_ms"]) == pytest.approx(table[r["arch"]], rel=1e-6)
        else:  # a degenerate cell: synflow is undefined (log 0), a FAIL trial
            assert "score is 0" in r["error"]

    study = optuna.load_study(study_name=STUDY, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    evaluated = [t for t in study.trials if t.user_attrs.get("evaluated")]
    assert len(evaluated) == 9 and len(complete) >= 6
    errors = {t.number for t in study.trials if "error" in t.user_attrs}
    for t in study.trials:  # failed candidates are FAIL trials, never values
        failed = t.state == optuna.trial.TrialState.FAIL
        assert failed == (t.number in errors or "rejected" in t.user_attrs
                          or t.user_attrs.get("duplicate_of") in errors)
    # The front: non-empty, non-dominated among the complete trials, and dominating the rest.
    front = study.best_trials
    assert front
    for t in front:
        assert not any(dominates(u.values, t.values) for u in complete)
    for t in complete:
        assert t in front or any(dominates(f.values, t.values) for f in front)
    by_arch = {r["arch"]: r for r in found}
    for t in front:  # the front's archs are the search's records, with the same values
        record = by_arch[t.user_attrs["arch"]]
        assert [float(record["proxy"]), float(record["latency_ms"])] == t.values
    ok = next(t for t in complete if "duplicate_of" not in t.user_attrs)
    assert ok.user_attrs["latency"]["execution_provider"] == "hw-nas-bench:raspi4"
    assert ok.user_attrs["canonical_arch"] and ok.user_attrs["proxy"]["name"] == "synflow"
