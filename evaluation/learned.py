"""`edgescore eval learned`: how well the few-label ranker orders the archs it was not given.

Reads one or more per_arch.csv files of `edgescore eval proxies` (merged on `index`, so a later
run with more proxy columns adds to an earlier one), and for each N and seed draws N labelled
archs, fits the ranker (server/scoring/learned.py) on them and ranks the rest, with three
feature sets: graph features only, proxy values only, and both. The floor is the single proxy a
user holding those N labels would pick: the one with the best Kendall tau on them, scored on the
same unlabelled archs. Failed proxy values count as the worst there, as they do for the ranker.
The ground truth is the CSVs' accuracy column, or with `truth` another column of the accuracy
table joined on `index` (e.g. `c10_test`, the column VKDNW and AZ-NAS publish against).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgescore.evaluation.inputs import EvalError, default_accuracy_csv, read_accuracy
from edgescore.evaluation.per_arch import TableError, load_table
from edgescore.server.scoring.learned import LearnedRanker, feature_matrix
from edgescore.server.scoring.ranks import kendall_tau, spearman

LABEL_COUNTS = (20, 50, 100, 400)
FEATURE_SETS = ("graph", "proxies", "both", "best proxy")
RESULTS_CSV = "learned.csv"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class LearnedConfig:
    per_arch: tuple[Path, ...]
    out: Path
    proxies: Optional[tuple[str, ...]] = None  # None: every proxy column
    counts: tuple[int, ...] = LABEL_COUNTS
    seeds: int = 10
    first_seed: int = 0
    space: str = "nb201"
    truth: Optional[str] = None  # an accuracy-table column; None: the CSVs' accuracy
    accuracy_csv: Optional[Path] = None  # None: the shared accuracy_dev.csv


@dataclass
class Table:
    indices: list[int]
    archs: list[str]
    accuracy: np.ndarray
    proxies: dict[str, np.ndarray]  # NaN where a proxy failed


def read_tables(paths: Sequence[Path], proxies: Optional[Sequence[str]] = None) -> Table:
    """Archs, accuracies and proxy columns of per_arch.csv files (per_arch.load_table: the archs
    every file has, a column from the first file that has it); NaN where a proxy failed."""
    try:
        merged = load_table(paths, proxies)
    except TableError as exc:
        raise EvalError(str(exc)) from None
    if len(merged.archs) < 2 * min(LABEL_COUNTS):
        raise EvalError(f"{len(merged.archs)} archs in every CSV; too few to evaluate")
    return Table(
        indices=merged.indices, archs=merged.archs, accuracy=np.array(merged.accuracy),
        proxies={name: np.array([math.nan if v is None else v for v in column])
                 for name, column in merged.values.items()})


def with_truth(table: Table, accuracy_csv: Optional[Path], column: str) -> Table:
    """The table ranked against `column` of the accuracy table instead, joined on `index`."""
    path = accuracy_csv or default_accuracy_csv()
    if path is None:
        raise EvalError("give --accuracy-csv (the accuracy table with the --truth column)")
    by_index = {index: accuracy for index, _, accuracy in read_accuracy(path, column)}
    missing = [i for i in table.indices if i not in by_index]
    if missing:
        raise EvalError(f"{len(missing)} archs have no {column!r} in {path} "
                        f"(first index {missing[0]})")
    return Table(table.indices, table.archs, np.array([by_index[i] for i in table.indices]),
                 table.proxies)


def _worst_for_missing(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), -np.inf, values)


def _best_proxy(table: Table, labelled: np.ndarray) -> str:
    taus = {name: kendall_tau(_worst_for_missing(v[labelled]), table.accuracy[labelled])
            for name, v in table.proxies.items()}
    return max(taus, key=lambda name: -math.inf if math.isnan(taus[name]) else taus[name])


@dataclass(frozen=True)
class Result:
    features: str  # one of FEATURE_SETS
    n: int
    seed: int
    proxy: str  # the best proxy's name; "" for the ranker
    tau: float
    rho: float


def evaluate(table: Table, config: LearnedConfig) -> list[Result]:
    """One result per (feature set, N, seed): tau and rho on the unlabelled archs."""
    proxy_x, proxy_names = feature_matrix(table.archs, config.space, table.proxies, graph=False)
    graph_x, graph_names = feature_matrix(table.archs, config.space, {}, graph=True)
    matrices = {"graph": (graph_x, graph_names), "proxies": (proxy_x, proxy_names),
                "both": (np.hstack([proxy_x, graph_x]), proxy_names + graph_names)}
    results: list[Result] = []
    for n in config.counts:
        if not 2 <= n <= len(table.archs) - 2:
            raise EvalError(f"N = {n} must leave two labelled and two unlabelled archs of "
                            f"{len(table.archs)}")
        for seed in range(config.first_seed, config.first_seed + config.seeds):
            order = np.random.default_rng(seed).permutation(len(table.archs))
            labelled, rest = order[:n], order[n:]
            truth = table.accuracy[rest]
            for name, (x, names) in matrices.items():
                ranker = LearnedRanker.fit(x[labelled], table.accuracy[labelled], names)
                predicted = ranker.predict_rank(x[rest])
                results.append(Result(name, n, seed, "", kendall_tau(predicted, truth),
                                      spearman(predicted, truth)))
            best = _best_proxy(table, labelled)
            predicted = _worst_for_missing(table.proxies[best][rest])
            results.append(Result("best proxy", n, seed, best, kendall_tau(predicted, truth),
                                  spearman(predicted, truth)))
    return results


def summary(results: Sequence[Result]) -> dict[tuple[str, int], tuple[float, float, float, float]]:
    """(tau mean, tau sd, rho mean, rho sd) over seeds per (feature set, N)."""
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.features, result.n), []).append(result)
    return {key: (float(np.mean([r.tau for r in rows])), float(np.std([r.tau for r in rows])),
                  float(np.mean([r.rho for r in rows])), float(np.std([r.rho for r in rows])))
            for key, rows in groups.items()}


def write_results(results: Sequence[Result], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["features", "n", "seed", "proxy", "tau", "rho"])
        for r in results:
            writer.writerow([r.features, r.n, r.seed, r.proxy, f"{r.tau:.6f}", f"{r.rho:.6f}"])


def render_report(results: Sequence[Result], table: Table, config: LearnedConfig) -> str:
    stats = summary(results)
    counts = sorted({r.n for r in results})
    picked = Counter(r.proxy for r in results if r.features == "best proxy")
    seeds = f"{config.first_seed}..{config.first_seed + config.seeds - 1}"
    lines = [
        f"# Few-label ranking: {config.space}, {len(table.archs)} archs",
        "",
        f"Inputs: {', '.join(f'`{p.name}` ({p.parent.name})' for p in config.per_arch)}; "
        f"proxies: {', '.join(table.proxies)}. Ground truth: "
        + (f"`{config.truth}` of the accuracy table." if config.truth
           else "the inputs' accuracy column."),
        "",
        f"For each N and each of {config.seeds} seeds ({seeds}), N archs are drawn as the "
        "labelled set; the ranker (gradient boosting blended with a linear pairwise ranker, "
        "server/scoring/learned.py) is fitted on them and orders the other archs. τ: Kendall "
        "τ-b, ρ: Spearman, on the unlabelled archs; mean ± sd over seeds. *graph*: GRAF-style "
        "cell features; *proxies*: the proxy columns; *both*: the two together. *best proxy*: "
        "the one proxy with the best τ on the labelled archs, scored on the same unlabelled "
        "archs (picked: " + ", ".join(f"{name} {k}×" for name, k in picked.most_common()) + ").",
        "",
    ]
    for title, column in (("Kendall τ", 0), ("Spearman ρ", 2)):
        lines += [f"## {title}", "", "| features | " + " | ".join(f"N={n}" for n in counts) + " |",
                  "|---|" + "---:|" * len(counts)]
        for features in FEATURE_SETS:
            cells = [stats.get((features, n)) for n in counts]
            lines.append(f"| {features} | " + " | ".join(
                "—" if c is None else f"{c[column]:.3f} ± {c[column + 1]:.3f}" for c in cells)
                + " |")
        lines.append("")
    return "\n".join(lines)


def run_learned(config: LearnedConfig) -> str:
    """Evaluate, write learned.csv and report.md under config.out; return the report."""
    table = read_tables(config.per_arch, config.proxies)
    if config.truth:
        table = with_truth(table, config.accuracy_csv, config.truth)
    results = evaluate(table, config)
    config.out.mkdir(parents=True, exist_ok=True)
    write_results(results, config.out / RESULTS_CSV)
    report = render_report(results, table, config)
    (config.out / REPORT_MD).write_text(report)
    return report
