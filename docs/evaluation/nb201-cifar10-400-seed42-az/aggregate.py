"""AZ-NAS's aggregate on this run's per-arch values (run from the repository root:
`.venv/bin/python docs/evaluation/nb201-cifar10-400-seed42-az/aggregate.py`).

Per member and for the aggregate sum of log(rank / l) (the reference notebook's formula), Kendall
tau and Spearman rho with two ground truths of accuracy_dev.csv: `c10_test` (NATS-Bench's
'cifar10' test accuracy, what AZ-NAS reports) and `c10valid_test` (this project's usual one). Two
protocols: the reference's (a failed value is -inf, ranked last; all archs) and the served one
(archs whose four values are all finite; az_nas as the server serves it, percentiles against the
sample itself and against a population of the first 100 sampled archs).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from scipy import stats

from edgescore.server.scoring.ranks import percentile

HERE = Path(__file__).resolve().parent
ACCURACY = HERE.parents[3] / "shared" / "data" / "nb201" / "accuracy_dev.csv"
AZ = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"]
TRUTHS = ("c10_test", "c10valid_test")


def corr(x: np.ndarray, y: np.ndarray) -> str:
    return f"{stats.kendalltau(x, y)[0]:.3f} / {stats.spearmanr(x, y)[0]:.3f}"


def log_rank(values: dict[str, np.ndarray], members: list[str]) -> np.ndarray:
    n = len(next(iter(values.values())))
    return sum(np.log(stats.rankdata(values[m]) / n) for m in members)


def served(values: dict[str, np.ndarray], population: dict[str, np.ndarray],
           rows: range) -> np.ndarray:
    return np.array([sum(math.log(percentile(values[m][i], population[m]) / 100) for m in AZ)
                     for i in rows])


def main() -> None:
    with ACCURACY.open() as f:
        accuracy = {r["index"]: r for r in csv.DictReader(f)}
    with (HERE / "per_arch.csv").open() as f:
        rows = list(csv.DictReader(f))
    finite = [r for r in rows if all(r[m] for m in AZ)]
    print(f"{len(rows)} archs, {len(finite)} with all four values finite\n")
    print("| | " + " | ".join(f"τ / ρ vs {t}" for t in TRUTHS) + " |")
    print("|---|" + "---|" * len(TRUTHS))
    lines: dict[str, list[str]] = {}
    for truth in TRUTHS:
        y_all = np.array([float(accuracy[r["index"]][truth]) for r in rows])
        y = np.array([float(accuracy[r["index"]][truth]) for r in finite])
        ref = {m: np.array([float(r[m]) if r[m] else -np.inf for r in rows]) for m in AZ}
        own = {m: np.array([float(r[m]) for r in finite]) for m in AZ}
        n, first = len(finite), 100
        cells = {}
        for m in AZ:
            cells[f"{m}, failures last (n={len(rows)})"] = corr(ref[m], y_all)
        cells[f"az_nas, reference protocol (n={len(rows)})"] = corr(log_rank(ref, AZ), y_all)
        for m in AZ:
            cells[f"{m}, finite only (n={n})"] = corr(own[m], y)
        cells[f"az_nas, in-sample ranks (n={n})"] = corr(log_rank(own, AZ), y)
        cells[f"az_nas served, population = the {n}"] = corr(served(own, own, range(n)), y)
        pop = {m: own[m][:first] for m in AZ}
        cells[f"az_nas served vs the first {first}, on the other {n - first}"] = corr(
            served(own, pop, range(first, n)), y[first:])
        cells[f"az_nas in-sample ranks, on the same {n - first}"] = corr(
            log_rank({m: own[m][first:] for m in AZ}, AZ), y[first:])
        for drop in AZ:
            cells[f"log-rank sum without {drop} (n={n})"] = corr(
                log_rank(own, [m for m in AZ if m != drop]), y)
        for key, value in cells.items():
            lines.setdefault(key, []).append(value)
    for key, values in lines.items():
        print(f"| {key} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
