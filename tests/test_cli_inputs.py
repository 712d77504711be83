"""The CLI's inputs and exit codes: bad option values and files are usage errors (exit 2), a
resumed batch retries the rows whose request or an item of it failed for a transient reason (and
only those), one spec protobuf cannot
encode fails alone, and a search that scored nothing exits 1 with its failures infeasible."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from edgescore import cli
from edgescore.client import AsyncClient, Client
from edgescore.client.batch import BatchError, columns, done_ids, read_specs
from edgescore.client.launcher import LocalStack

GOOD = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|"
# Every route passes a 'none' op: the server answers, but synflow fails for this arch alone.
DEGENERATE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
NB101 = {"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
         "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"]}
# Nothing listens there: every request fails with UNAVAILABLE once the deadline passes.
NOWHERE = ["--server", "127.0.0.1:1", "--timeout", "1"]
BOM = "\ufeff"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(agents={}) as s:
        yield s


# --- usage errors --------------------------------------------------------------------------

def _specs(tmp: Path) -> str:
    return str(write(tmp / "specs.csv", f"id,arch\na,{GOOD}\n"))


USAGE_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "score seed": (lambda t: ["score", "--arch", GOOD, "--seed", "-1"], "--seed"),
    "score num-classes": (lambda t: ["score", "--arch", GOOD, "--num-classes", "-1"],
                          "--num-classes"),
    "score input-resolution": (lambda t: ["score", "--arch", GOOD, "--input-resolution",
                                          "-1"], "--input-resolution"),
    "score warmup-runs": (lambda t: ["score", "--arch", GOOD, "--warmup-runs", "-1"],
                          "--warmup-runs"),
    "score spec not JSON": (lambda t: ["score", "--space", "nb101", "--spec",
                                       str(write(t / "bad.json", "{oops"))], "--spec"),
    "tls-ca missing": (lambda t: ["--tls-ca", str(t / "nonexistent.pem"), "score", "--arch",
                                  GOOD], "--tls-ca"),
    "tls-cert missing": (lambda t: ["--tls-cert", str(t / "no-cert.pem"), "--tls-key",
                                    str(t / "no-key.pem"), "batch", _specs(t), "--out",
                                    str(t / "o.csv")], "--tls-cert"),
    "batch seed": (lambda t: ["batch", _specs(t), "--out", str(t / "o.csv"), "--seed", "-1"],
                   "--seed"),
    "batch max-in-flight": (lambda t: ["batch", _specs(t), "--out", str(t / "o.csv"),
                                       "--max-in-flight", "0"], "--max-in-flight"),
    "batch threads": (lambda t: ["batch", _specs(t), "--out", str(t / "o.csv"), "--threads",
                                 "-2"], "--threads"),
    "search max-in-flight": (lambda t: ["search", "--max-in-flight", "0", "--out", str(t)],
                             "--max-in-flight"),
    "search min-runs": (lambda t: ["search", "--min-runs", "-1", "--out", str(t)],
                        "--min-runs"),
    "search accuracy-csv without arch": (
        lambda t: ["search", "--budget", "2", "--out", str(t), "--accuracy-csv",
                   str(write(t / "acc.csv", "name,c10_test\nx,90.0\n"))], "'arch'"),
    "timeout negative": (lambda t: ["--timeout", "-1", "score", "--arch", GOOD], "--timeout"),
    "min-seconds negative": (lambda t: ["score", "--arch", GOOD, "--min-seconds", "-1"],
                             "--min-seconds"),
    "search latency-ms negative": (lambda t: ["search", "--latency-ms", "-5", "--out", str(t)],
                                   "--latency-ms"),
    "hw-study quantiles not numbers": (lambda t: ["eval", "hw-study", "--offline",
                                                  "--quantiles", "abc", "--out", str(t)],
                                       "--quantiles"),
    "hw-study quantile out of range": (lambda t: ["eval", "hw-study", "--offline",
                                                  "--quantiles", "25,100", "--out", str(t)],
                                       "--quantiles"),
    "eval workers negative": (lambda t: ["eval", "proxies", "--workers", "-1", "--out",
                                         str(t)], "--workers"),
    "search hw-csv without its column": (
        lambda t: ["search", "--budget", "2", "--out", str(t), "--device", "raspi4",
                   "--latency-ms", "20", "--hw-csv",
                   str(write(t / "hw.csv", "arch,c10_edgegpu_latency\nx,3.0\n"))],
        "c10_raspi4_latency"),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_bad_values_and_files_are_usage_errors(case: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    args, named = USAGE_CASES[case]
    # Before any connection is made: nothing listens on NOWHERE, and that is never reached.
    assert cli.main([*NOWHERE, *args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Error" in err and named in err, err


# --- batch input files ---------------------------------------------------------------------

def test_default_ids_are_line_numbers_and_an_id_of_zero_is_kept(tmp_path: Path) -> None:
    jsonl = write(tmp_path / "ids.jsonl", "".join(
        json.dumps(line) + "\n" for line in ({"id": 1, "arch": GOOD}, {"id": 0, "arch": GOOD})
    ) + "\n" + json.dumps({"arch": GOOD}) + "\n")
    assert [s.id for s in read_specs(jsonl)] == ["1", "0", "4"]  # line 3 is blank
    csv_ids = write(tmp_path / "ids.csv", f"id,arch\n1,{GOOD}\n,{GOOD}\n0,{GOOD}\n")
    assert [s.id for s in read_specs(csv_ids)] == ["1", "3", "0"]
    # A real collision is still refused: line 3's default id is 3, as is line 2's own.
    clash = write(tmp_path / "clash.csv", f"id,arch\n3,{GOOD}\n,{GOOD}\n")
    with pytest.raises(BatchError, match="'3'"):
        read_specs(clash)


def test_batch_files_may_start_with_a_bom(tmp_path: Path) -> None:
    # Excel and Notepad write one; the first column's name must not carry it.
    for name, text in (("arch_first.csv", f"{BOM}arch,id\n{GOOD},x\n"),
                       ("id_first.csv", f"{BOM}id,arch\nx,{GOOD}\n"),
                       ("bom.jsonl", BOM + json.dumps({"id": "x", "arch": GOOD}) + "\n")):
        specs = read_specs(write(tmp_path / name, text))
        assert [(s.id, s.arch) for s in specs] == [("x", GOOD)], name


# --- batch against a server ----------------------------------------------------------------

@pytest.mark.slow
def test_a_resumed_batch_retries_failed_requests_only(
        stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    specs = write(tmp_path / "specs.csv", f"id,arch\ngood,{GOOD}\nnone,{DEGENERATE}\n")
    out = tmp_path / "out.csv"
    batch = ["batch", str(specs), "--out", str(out), "--proxies", "params,synflow",
             "--no-progress"]
    # Server down: every row fails; everything is written, the summary printed, then exit 1.
    assert cli.main([*NOWHERE, *batch]) == 1
    assert "wrote" in capsys.readouterr().out
    first = rows(out)
    assert sorted(r["id"] for r in first) == ["good", "none"]
    assert all("UNAVAILABLE" in r["error"] and not r["canonical"] for r in first)
    # Server up: both are retried, and each id keeps one row.
    assert cli.main(["--server", stack.target, *batch]) == 1  # synflow fails on "none"
    second = {r["id"]: r for r in rows(out)}
    assert len(rows(out)) == 2 and all(r["canonical"] for r in second.values())
    assert not second["good"]["error"] and float(second["good"]["synflow"]) > 0
    assert "synflow: FAILED_PRECONDITION" in second["none"]["error"]
    capsys.readouterr()
    # The server answered both: a per-proxy failure is a result, not a retry.
    assert cli.main(["--server", stack.target, *batch]) == 0
    assert "resuming: 2 of 2" in capsys.readouterr().err
    assert {r["id"]: r for r in rows(out)} == second


def test_rows_with_a_transient_item_failure_are_not_done(tmp_path: Path) -> None:
    cols = columns(["synflow"], ["raspi4"])
    errors = {"ok": "", "perm": "synflow: FAILED_PRECONDITION: degenerate cell",
              "cap": "raspi4: RESOURCE_EXHAUSTED: over the memory cap",
              "lost": "raspi4: UNAVAILABLE: agent lost",
              "late": "synflow: FAILED_PRECONDITION: x; raspi4: DEADLINE_EXCEEDED: no answer",
              "aborted": "raspi4: ABORTED: job taken over", "cancelled": "raspi4: CANCELLED: x",
              "quoted": "synflow: FAILED_PRECONDITION: upstream said UNAVAILABLE: later"}
    out = tmp_path / "out.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        for spec_id, error in errors.items():
            writer.writerow({"id": spec_id, "space": "nb201", "arch": GOOD, "canonical": GOOD,
                             "error": error})
    assert done_ids(out) == {"ok", "perm", "cap", "quoted"}


@pytest.mark.slow
def test_a_resumed_batch_retries_transient_item_failures_and_keeps_permanent_ones(
        stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    specs = write(tmp_path / "specs.csv", f"id,arch\ngood,{GOOD}\nnone,{DEGENERATE}\n")
    out = tmp_path / "out.csv"
    batch = ["--server", stack.target, "batch", str(specs), "--out", str(out), "--proxies",
             "params,synflow", "--no-progress"]
    assert cli.main(batch) == 1  # synflow fails on "none", for good
    answered = {r["id"]: r for r in rows(out)}
    # As if synflow of "good" had run out of time on a loaded server.
    timed_out = {**answered["good"], "synflow": "",
                 "error": "synflow: DEADLINE_EXCEEDED: the unit exceeded 300 s"}
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns(["params", "synflow"], []))
        writer.writeheader()
        writer.writerows([answered["none"], timed_out])
    capsys.readouterr()
    assert cli.main(batch) == 0  # what this run scored ("good") succeeded
    assert "resuming: 1 of 2" in capsys.readouterr().err
    again = rows(out)
    assert sorted(r["id"] for r in again) == ["good", "none"]  # replaced, not duplicated
    by_id = {r["id"]: r for r in again}
    assert by_id["none"] == answered["none"]
    assert not by_id["good"]["error"] and float(by_id["good"]["synflow"]) > 0


@pytest.mark.slow
def test_a_half_written_row_is_dropped_and_other_columns_are_refused(
        stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    specs = write(tmp_path / "specs.csv", f"id,arch\na,{GOOD}\nb,{GOOD}\n")
    out = tmp_path / "out.csv"
    cols = columns(["params"], [])
    # A batch killed in the middle of writing row "a": no newline after it.
    write(out, ",".join(cols) + "\r\n" + f"a,nb201,{GOOD[:20]}")
    batch = ["--server", stack.target, "batch", str(specs), "--out", str(out), "--no-progress"]
    assert cli.main([*batch, "--proxies", "params"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 3
    done = rows(out)
    assert sorted(r["id"] for r in done) == ["a", "b"]
    assert all(None not in r and r["arch"] == GOOD and float(r["params"]) > 0 for r in done)
    # Other proxies: another layout, refused before anything is written.
    capsys.readouterr()
    assert cli.main([*batch, "--proxies", "params,flops"]) == 2
    err = capsys.readouterr().err
    assert ",".join(cols) in err and ",".join(columns(["params", "flops"], [])) in err
    assert out.read_text(encoding="utf-8") == text


@pytest.mark.slow
def test_a_spec_protobuf_cannot_encode_fails_alone(
        stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # "\ud800" in JSON is a lone surrogate: no UTF-8 for it, so no request can carry it.
    specs = write(tmp_path / "sur.jsonl",
                  json.dumps({"id": "good", "arch": GOOD}) + "\n"
                  + '{"id": "bad", "arch": "|nor_conv_3x3~0|\\ud800"}\n')
    out = tmp_path / "out.csv"
    assert cli.main(["--server", stack.target, "batch", str(specs), "--out", str(out),
                     "--proxies", "params", "--no-progress"]) == 1
    assert "wrote" in capsys.readouterr().out
    by_id = {r["id"]: r for r in rows(out)}
    assert by_id["good"]["canonical"] and float(by_id["good"]["params"]) > 0
    assert by_id["bad"]["error"].startswith("INVALID_ARGUMENT: arch.nb201")
    assert not by_id["bad"]["canonical"]
    # The SDKs: one BatchItem with the error, the others scored.
    archs = [GOOD, "|nor_conv_3x3~0|\ud800", GOOD]
    with Client(stack.target, timeout=60) as client:
        items = sorted(client.score_many(archs, ["params"]), key=lambda i: i.index)
    assert [i.ok for i in items] == [True, False, True]
    assert items[1].error is not None and items[1].error.code.name == "INVALID_ARGUMENT"

    async def score_async() -> list[bool]:
        async with AsyncClient(stack.target, timeout=60) as client:
            found = [item async for item in client.score_many(archs, ["params"])]
        return [i.ok for i in sorted(found, key=lambda i: i.index)]

    assert asyncio.run(score_async()) == [True, False, True]


@pytest.mark.slow
def test_a_spec_file_may_start_with_a_bom(stack: LocalStack, tmp_path: Path) -> None:
    spec = write(tmp_path / "cell.json", BOM + json.dumps(NB101))
    assert cli.main(["--server", stack.target, "score", "--space", "nb101", "--spec", str(spec),
                     "--proxies", "params"]) == 0


# --- search --------------------------------------------------------------------------------

def test_a_search_that_scores_nothing_exits_1_with_its_failures_infeasible(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "search"
    assert cli.main([*NOWHERE, "search", "--algo", "random", "--budget", "2", "--proxy",
                     "params", "--device", "raspi4", "--latency-ms", "20", "--out", str(out),
                     "--no-progress"]) == 1
    assert "no candidate was scored" in capsys.readouterr().out
    found = rows(out / "search.csv")
    assert len(found) == 2 and all("UNAVAILABLE" in r["error"] for r in found)
    assert all(r["feasible"] in ("", "0") for r in found)


@pytest.mark.slow
def test_a_proxy_only_search_counts_scored_candidates_feasible(
        stack: LocalStack, tmp_path: Path) -> None:
    out = tmp_path / "search"
    assert cli.main(["--server", stack.target, "search", "--algo", "random", "--budget", "3",
                     "--proxy", "params", "--out", str(out), "--no-progress"]) == 0
    found = rows(out / "search.csv")
    assert len(found) == 3 and all(r["feasible"] == "1" and not r["error"] for r in found)
