"""`edgescore eval aggregate`: label-free aggregations of proxies, and which members to serve.

Each aggregation is the one the server serves (`server/proxies/_aggregate.py`: the mean, the
AZ-NAS log-rank sum and the geometric mean of the members' percentiles); offline, a member's
percentile is its place among the evaluated archs instead of the server's reference population.

Choosing members by looking at accuracy is learning from labels, so the archs are split in two
at random: every subset of the candidates (2 to `max_members` of them) is scored by Kendall's tau
on the selection half, and the best subset of each method is reported on the other half, which
the choice never saw. Every method and subset is compared on the same archs: those where every
candidate proxy has a value (failed proxies, e.g. on cells with no input-output path, would
otherwise leave some subsets an easier set of archs).

One split's held-out tau moves by a few hundredths with the split, and so does the subset it
picks; `splits` > 1 repeats the choice on that many splits (seeds `seed`, `seed` + 1, ...): the
mean of the report halves' tau estimates how well the procedure does on archs it never saw, and
the subset chosen most often is the one to serve.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgescore.evaluation.per_arch import ProxyTable, TableError, load_table
from edgescore.evaluation.stats import kendall_tau, rankdata, spearman
from edgescore.server.proxies import _aggregate

METHODS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": _aggregate.mean,
    "log_rank": _aggregate.log_rank_sum,
    "geo_mean": _aggregate.geometric_mean,
}


@dataclass(frozen=True)
class Choice:
    method: str
    members: tuple[str, ...]
    tau_selection: float
    tau_report: float
    rho_report: float


@dataclass
class AggregateReport:
    n_selection: int
    n_report: int
    candidates: list[str]
    singles: list[Choice]
    best: list[Choice]
    fixed: list[Choice]


def percentiles(values: Sequence[float]) -> np.ndarray:
    """Each value's percentile among `values`, as the server's (average rank / (n + 1))."""
    return 100.0 * rankdata(values) / (len(values) + 1)


def aggregate(method: str, table: ProxyTable, members: Sequence[str],
              rows: Sequence[int]) -> np.ndarray:
    """The aggregation of `members` over `rows` (rows where every member has a value)."""
    pct = np.stack([percentiles([table.values[m][i] for i in rows]) for m in members], axis=1)
    combine = METHODS[method]
    return np.array([combine(list(row)) for row in pct])


def aggregate_column(table: ProxyTable, method: str, members: Sequence[str]) -> str:
    """Adds the aggregation as a column of its own ("method(a+b)"), None where a member failed,
    and returns its name."""
    name = f"{method}({'+'.join(members)})"
    rows = [i for i in range(len(table.archs))
            if all(table.values[m][i] is not None for m in members)]
    column: list[Optional[float]] = [None] * len(table.archs)
    for i, v in zip(rows, aggregate(method, table, members, rows)):
        column[i] = float(v)
    table.values[name] = column
    return name


def _tau(table: ProxyTable, values: np.ndarray, rows: Sequence[int]) -> float:
    return kendall_tau(values, [table.accuracy[i] for i in rows])


def _choice(table: ProxyTable, method: str, members: tuple[str, ...], selection: list[int],
            report: list[int]) -> Choice:
    rep = aggregate(method, table, members, report) if len(members) > 1 else np.array(
        [table.values[members[0]][i] for i in report])
    sel = aggregate(method, table, members, selection) if len(members) > 1 else np.array(
        [table.values[members[0]][i] for i in selection])
    return Choice(method, members, _tau(table, sel, selection), _tau(table, rep, report),
                  spearman(rep, [table.accuracy[i] for i in report]))


def select(table: ProxyTable, candidates: Sequence[str], max_members: int, seed: int,
           fixed: Sequence[tuple[str, tuple[str, ...]]] = ()) -> AggregateReport:
    """The best subset of each method on one random half, reported on the other; `fixed`
    aggregations (e.g. a paper's own members) are reported on the same halves."""
    needed = {*candidates, *(m for _, members in fixed for m in members)}
    rows = [i for i in range(len(table.archs))
            if all(table.values[c][i] is not None for c in needed)]
    shuffled = random.Random(seed).sample(rows, len(rows))
    selection, report = sorted(shuffled[: len(rows) // 2]), sorted(shuffled[len(rows) // 2:])
    singles = sorted((_choice(table, "single", (c,), selection, report) for c in candidates),
                     key=lambda c: -c.tau_selection)
    best = []
    for method in METHODS:
        # Percentiles of each candidate on the selection half, once: each subset is then a
        # combination of columns.
        pct = {c: percentiles([table.values[c][i] for i in selection]) for c in candidates}
        accuracy = [table.accuracy[i] for i in selection]
        top: tuple[float, tuple[str, ...]] = (-2.0, ())
        for k in range(2, max_members + 1):
            for members in itertools.combinations(candidates, k):
                stacked = np.stack([pct[m] for m in members], axis=1)
                values = _vectorised(method, stacked)
                tau = kendall_tau(values, accuracy)
                if tau > top[0]:
                    top = (tau, members)
        best.append(_choice(table, method, top[1], selection, report))
    fixed_choices = [_choice(table, method, members, selection, report)
                     for method, members in fixed]
    return AggregateReport(len(selection), len(report), list(candidates), singles, best,
                           fixed_choices)


def _vectorised(method: str, pct: np.ndarray) -> np.ndarray:
    """METHODS[method] over each row of `pct` at once (the subset search runs thousands)."""
    if method == "mean":
        return pct.mean(axis=1)
    if method == "log_rank":
        return np.log(pct / 100.0).sum(axis=1)
    return np.exp(np.log(pct).mean(axis=1))


def markdown(report: AggregateReport, sources: Sequence[Path], seed: int,
             max_members: int) -> str:
    lines = [
        f"Label-free aggregation on {report.n_selection + report.n_report} archs where every "
        f"candidate has a value ({', '.join(str(s) for s in sources)}), split at random "
        f"(seed {seed}) into a selection half ({report.n_selection}) and a report half "
        f"({report.n_report}). Members: the best subset of 2 to {max_members} candidates by "
        "Kendall τ on the selection half; τ and ρ on the report half, which the choice never "
        "saw.", "",
        "| aggregation | members | τ selection | τ report | ρ report |",
        "|---|---|---:|---:|---:|",
    ]
    for c in [*report.best, *report.fixed, *report.singles]:
        lines.append(f"| {c.method} | {', '.join(c.members)} | {c.tau_selection:.3f} | "
                     f"{c.tau_report:.3f} | {c.rho_report:.3f} |")
    return "\n".join(lines) + "\n"


def repeated(reports: Sequence[AggregateReport], seed: int) -> str:
    """The summary of the choice repeated over splits seed, seed + 1, ...: per split the chosen
    members and their taus; per method the mean report tau and the most chosen members."""
    lines = ["", f"## Repeated over {len(reports)} splits (seeds {seed}-{seed + len(reports) - 1})",
             "", "| split | aggregation | members | τ selection | τ report |",
             "|---:|---|---|---:|---:|"]
    for k, report in enumerate(reports):
        lines += [f"| {seed + k} | {c.method} | {', '.join(c.members)} | {c.tau_selection:.3f} | "
                  f"{c.tau_report:.3f} |" for c in report.best]
    lines += ["", "| aggregation | τ report, mean ± sd | members chosen most often (splits) |",
              "|---|---:|---|"]
    for i, method in enumerate(c.method for c in reports[0].best):
        chosen = [r.best[i] for r in reports]
        members, count = Counter(c.members for c in chosen).most_common(1)[0]
        taus = [c.tau_report for c in chosen]
        lines.append(f"| {method} (chosen per split) | {np.mean(taus):.3f} ± {np.std(taus):.3f} "
                     f"| {', '.join(members)} ({count} of {len(chosen)}) |")
    for i, c in enumerate(reports[0].fixed):
        taus = [r.fixed[i].tau_report for r in reports]
        lines.append(f"| {c.method} (fixed) | {np.mean(taus):.3f} ± {np.std(taus):.3f} | "
                     f"{', '.join(c.members)} |")
    return "\n".join(lines) + "\n"


def run(sources: Sequence[Path], candidates: Optional[Sequence[str]], max_members: int,
        seed: int, fixed: Sequence[tuple[str, tuple[str, ...]]], out: Path,
        log: Callable[[str], None] = print, splits: int = 1) -> list[AggregateReport]:
    """The choice on `splits` random splits; aggregate.md holds the first split's full table and,
    with more splits, their summary."""
    table = load_table(sources)
    names = list(candidates) if candidates else list(table.values)
    missing = [m for m in {*names, *(m for _, ms in fixed for m in ms)} if m not in table.values]
    if missing:
        raise TableError(f"no column for {', '.join(sorted(missing))} in the CSVs")
    log(f"{len(table.archs)} archs, {len(names)} candidates: {', '.join(names)}")
    reports = []
    for k in range(splits):
        reports.append(select(table, names, max_members, seed + k, fixed))
        if splits > 1:
            log(f"split {k + 1}/{splits} (seed {seed + k}) done")
    text = markdown(reports[0], sources, seed, max_members)
    if splits > 1:
        text += repeated(reports, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "aggregate.md").write_text(text)
    log(f"wrote {out / 'aggregate.md'}")
    return reports
