"""What a search leaves behind: every candidate as CSV, the Pareto-front PNG, and (with a
benchmark's tables) how close the found arch is to the best feasible one."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgescore.client.search import Record, SearchResult, pareto_front

CSV_FIELDS = ("step", "arch", "canonical", "proxy", "latency_ms", "latency_source", "feasible",
              "objective", "error")


def write_csv(result: SearchResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_FIELDS)
        for r in result.records:
            writer.writerow([r.step, r.spec_text(), r.canonical, _num(r.proxy),
                             _num(r.latency_ms), r.latency_source, int(r.feasible),
                             _num(r.objective), r.error])


def _num(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def plot_pareto(result: SearchResult, path: Path) -> bool:
    """Proxy against latency for every candidate, the front and the budget marked. False when
    matplotlib is missing (`pip install 'edgescore[plots]'`) or nothing has a latency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c = result.config
    ok = [r for r in result.records if not r.error and math.isfinite(r.latency_ms)]
    if not ok:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for feasible, color, label in ((True, "tab:blue", "feasible"),
                                   (False, "tab:gray", "over budget")):
        pts = [r for r in ok if r.feasible == feasible]
        ax.scatter([r.latency_ms for r in pts], [r.proxy for r in pts], s=14, c=color,
                   alpha=0.7, label=f"{label} ({len(pts)})", zorder=3)
    front = [ok[i] for i in pareto_front([(r.latency_ms, r.proxy) for r in ok])]
    ax.plot([r.latency_ms for r in front], [r.proxy for r in front], "-o", c="tab:red", ms=4,
            lw=1.2, alpha=0.6, label=f"Pareto front ({len(front)})", zorder=2)
    if c.latency_ms:
        ax.axvline(c.latency_ms, ls="--", c="k", lw=1, label=f"budget {c.latency_ms:g} ms")
    best = result.best
    if best is not None and math.isfinite(best.latency_ms):
        ax.scatter([best.latency_ms], [best.proxy], s=120, marker="*", c="gold",
                   edgecolors="k", zorder=5, label="found")
    ax.set_xlabel(f"latency on {c.device} (median ms)")
    ax.set_ylabel(f"{c.proxy} (higher is better)")
    ax.set_title(f"{c.algo} search on {c.space}: {len(result.records)} candidates")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


@dataclass
class Closeness:
    found_arch: str
    found_accuracy: Optional[float]
    best_feasible_arch: str
    best_feasible_accuracy: float
    feasible_archs: int
    rank: Optional[int]           # 1 = the found arch is the best feasible one

    @property
    def gap(self) -> Optional[float]:
        if self.found_accuracy is None:
            return None
        return self.best_feasible_accuracy - self.found_accuracy

    def describe(self) -> str:
        if self.found_accuracy is None:
            return (f"found arch {self.found_arch} has no accuracy in the table; the best "
                    f"feasible arch reaches {self.best_feasible_accuracy:.2f}")
        return (f"found arch: accuracy {self.found_accuracy:.2f} (rank {self.rank} of "
                f"{self.feasible_archs} feasible archs); best feasible: "
                f"{self.best_feasible_accuracy:.2f}; gap {self.gap:.2f} points")


def closeness(result: SearchResult, accuracy: Mapping[str, float],
              latency: Optional[Mapping[str, float]] = None) -> Optional[Closeness]:
    """The found arch's accuracy against the best feasible arch of the table. Feasible: its
    latency in `latency` (e.g. HW-NAS-Bench's for the device) is within the search's budget;
    every arch of `accuracy` without a budget. None when the search found nothing."""
    best: Optional[Record] = result.best
    if best is None:
        return None
    budget = result.config.latency_ms
    feasible = {a: acc for a, acc in accuracy.items()
                if not budget or latency is None or latency.get(a, math.inf) <= budget}
    if not feasible:
        return None
    top = max(feasible, key=feasible.__getitem__)
    arch = best.spec_text()
    found = accuracy.get(arch)
    rank = None if found is None else 1 + sum(1 for v in feasible.values() if v > found)
    return Closeness(arch, found, top, feasible[top], len(feasible), rank)


def read_column(path: Path, column: str, key: str = "arch") -> dict[str, float]:
    """{key: value} of a benchmark table's `column` (rows with an empty value are left out; a
    UTF-8 BOM is allowed); ValueError naming what is missing or not a number."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        for needed in (key, column):
            if needed not in names:
                raise ValueError(f"{path} has no column '{needed}' (columns: {', '.join(names)})")
        values: dict[str, float] = {}
        for row in reader:
            if row[column] in ("", None):
                continue
            try:
                values[row[key]] = float(row[column])
            except ValueError:
                raise ValueError(f"{path}:{reader.line_num}: '{column}' is not a number: "
                                 f"{row[column]!r}") from None
        return values
