"""What a search leaves behind: every candidate as CSV, the Pareto-front PNG, and (with a
benchmark's tables) how close the found arch is to the best feasible one and the hypervolume of
its archs' true accuracy and latency."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
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


def hypervolume(points: Iterable[tuple[float, float]], latency_range: tuple[float, float],
                accuracy_range: tuple[float, float]) -> float:
    """The exact 2-D hypervolume of (latency down, accuracy up) points: both axes scaled to
    [0, 1] by the ranges (e.g. a benchmark table's min and max), the reference point the
    slowest latency and the lowest accuracy, (1, 0). Points outside the box are clipped to it.
    It is the integral over latency t of the best accuracy reached within t."""
    (lat_lo, lat_hi), (acc_lo, acc_hi) = latency_range, accuracy_range
    scaled = sorted((min(max((lat - lat_lo) / (lat_hi - lat_lo), 0.0), 1.0),
                     min(max((acc - acc_lo) / (acc_hi - acc_lo), 0.0), 1.0))
                    for lat, acc in points)
    area, best = 0.0, 0.0
    for (x, y), (next_x, _) in zip(scaled, [*scaled[1:], (1.0, 0.0)]):
        best = max(best, y)
        area += (next_x - x) * best
    return area


@dataclass
class Hypervolumes:
    """A search's archs in the benchmark's true accuracy and latency (see `hypervolume`)."""

    front: float          # the archs on the search's own front (proxy up, latency down)
    evaluated: float      # every arch it evaluated
    table: float          # every arch of the table: the most any search of it can reach
    front_size: int
    reference: tuple[float, float]   # (latency, accuracy) of the reference point

    def describe(self) -> str:
        return (f"hypervolume (true accuracy up, latency down; reference point "
                f"{self.reference[1]:.2f} accuracy, {self.reference[0]:.2f} ms): the proxy "
                f"front's {self.front_size} archs {self.front:.4f}, all evaluated archs "
                f"{self.evaluated:.4f}, the whole table {self.table:.4f}")


# The accuracy axis starts at this quantile of the table: below it lie the broken and
# near-broken archs (NB201 has cells at 10 %), whose area every search covers alike.
ACCURACY_QUANTILE = 0.1


def hypervolume_box(table: Iterable[tuple[float, float]]
                    ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The latency and accuracy ranges of a benchmark table's (latency, accuracy) points that
    `hypervolumes` uses: latency from 0 to the slowest arch, accuracy from the table's 10th
    percentile to 100; their far corner is the reference point."""
    points = list(table)
    accuracies = sorted(acc for _, acc in points)
    low = accuracies[int(ACCURACY_QUANTILE * (len(accuracies) - 1))]
    return (0.0, max(lat for lat, _ in points)), (low, 100.0)


def hypervolumes(result: SearchResult, accuracy: Mapping[str, float],
                 latency: Mapping[str, float]) -> Optional[Hypervolumes]:
    """The hypervolumes of a search over a benchmark table (None: no scored arch is in both
    tables), in the box of `hypervolume_box` over the archs both tables have."""
    table = {a: (latency[a], accuracy[a]) for a in accuracy.keys() & latency.keys()}
    ok = [r for r in result.records if not r.error and r.spec_text() in table
          and math.isfinite(r.latency_ms)]
    if not table or not ok:
        return None
    box = hypervolume_box(table.values())
    front = [ok[i] for i in pareto_front([(r.latency_ms, r.proxy) for r in ok])]
    return Hypervolumes(hypervolume([table[r.spec_text()] for r in front], *box),
                        hypervolume([table[r.spec_text()] for r in ok], *box),
                        hypervolume(table.values(), *box), len(front),
                        (box[0][1], box[1][0]))
