"""The survey's hardware-aware study: which proxy picks the best network under a latency budget?

For each replayed HW-NAS-Bench device and each latency budget (the 25/50/75 % quantiles of that
device's latencies over the archs), the feasible set is every arch at or under the budget. Each
proxy (and #Params, FLOPs, label-free aggregations of proxies, and the few-label ranker fitted on
N random archs' accuracies) picks its top feasible arch;
the study reports that arch's trained accuracy against the best feasible accuracy (the gap), and
Kendall's tau between the proxy and accuracy inside the feasible set (Li et al., TPAMI 2024,
section on hardware-aware NAS: every proxy struggles there).

Proxy values come from an `edgescore eval proxies` per-arch CSV (computed once, offline);
latencies come from replay agents through a real server and client (`via_server`, the default),
or straight from the HW-NAS-Bench table (`offline`, for a quick look).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgescore.evaluation.aggregate import aggregate_column
from edgescore.evaluation.per_arch import ProxyTable, TableError, load_table
from edgescore.evaluation.stats import kendall_tau

DEVICES = ("raspi4", "pixel3", "edgegpu", "edgetpu", "eyeriss", "fpga")
QUANTILES = (25.0, 50.0, 75.0)
DEFAULT_AGGREGATES = (("mean", ("synflow", "jacob_cov", "naswot")),)


class StudyError(Exception):
    """A user-facing problem with the study's inputs."""


@dataclass
class StudyConfig:
    proxies_csvs: Sequence[Path]  # per-arch CSVs over the same archs, merged on the index
    hw_csv: Path
    out: Path
    devices: Sequence[str] = DEVICES
    quantiles: Sequence[float] = QUANTILES
    proxies: Optional[Sequence[str]] = None  # default: every proxy column of the CSV
    # label-free aggregations added as proxies of their own: (method, members)
    aggregates: Sequence[tuple[str, tuple[str, ...]]] = DEFAULT_AGGREGATES
    # few-label ranker columns: label counts, each drawn with seeds 0..learned_seeds-1
    learned: Sequence[int] = ()
    learned_seeds: int = 5
    offline: bool = False  # latencies from the table instead of replay agents + server
    archs: int = 0  # 0 = every row of the CSV
    log: Callable[[str], None] = print


@dataclass(frozen=True)
class StudyRow:
    device: str
    quantile: float
    budget_ms: float
    feasible: int
    proxy: str
    picked_index: int
    picked_accuracy: float
    best_accuracy: float
    tau: float

    @property
    def gap(self) -> float:
        return self.best_accuracy - self.picked_accuracy


def table_latencies(hw_csv: Path, archs: Sequence[str], devices: Sequence[str]
                    ) -> dict[str, list[Optional[float]]]:
    """Latencies read from the HW-NAS-Bench table, as the replay agent answers them."""
    from edgescore.device_agent.replay import ReplayTable

    out = {}
    for device in devices:
        table = ReplayTable(hw_csv, device)
        out[device] = [table.latency_of(a) for a in archs]
    return out


def served_latencies(hw_csv: Path, archs: Sequence[str], devices: Sequence[str],
                     log: Callable[[str], None] = print, threads: int = 4
                     ) -> dict[str, list[Optional[float]]]:
    """Latencies through a real server and one replay agent per device (the product's path: the
    server exports each arch and queues a job per device; an arch a table lacks is NOT_FOUND)."""
    from edgescore.client.launcher import LocalStack

    out: dict[str, list[Optional[float]]] = {d: [None] * len(archs) for d in devices}
    with LocalStack(agents={}) as stack:
        for device in devices:
            stack.start_agent(device, extra=["--replay", "hw-nas-bench", "--csv", str(hw_csv),
                                             "--device", device])
        stack.wait_for_agents({d: 1 for d in devices})
        log(f"server {stack.target} with replay agents: {', '.join(devices)}")
        with stack.client(timeout=600) as client:
            def one(i: int) -> None:
                result = client.score(archs[i], [], list(devices))
                for device in devices:
                    lat = result.latencies[device]
                    out[device][i] = lat.median_ms if lat.ok else None

            with ThreadPoolExecutor(threads) as pool:
                for n, _ in enumerate(pool.map(one, range(len(archs))), start=1):
                    if n % 100 == 0 or n == len(archs):
                        log(f"  latencies: {n}/{len(archs)} archs")
    return out


def study(accuracy: Sequence[float], values: Mapping[str, Sequence[Optional[float]]],
          latencies: Mapping[str, Sequence[Optional[float]]],
          quantiles: Sequence[float] = QUANTILES) -> list[StudyRow]:
    """One row per (device, quantile, proxy). A proxy picks its highest value among feasible
    archs that have one (ties: the first such arch); tau is NaN below two valid pairs."""
    rows = []
    for device, lat in latencies.items():
        known = [i for i, v in enumerate(lat) if v is not None]
        if not known:
            continue
        for q in quantiles:
            budget = float(np.percentile([lat[i] for i in known], q))
            feasible = [i for i in known if lat[i] <= budget]
            best = max(accuracy[i] for i in feasible)
            for proxy, column in values.items():
                scored = [i for i in feasible if column[i] is not None]
                if not scored:
                    continue
                pick = max(scored, key=lambda i: column[i])
                tau = (kendall_tau([column[i] for i in scored], [accuracy[i] for i in scored])
                       if len(scored) > 1 else math.nan)
                rows.append(StudyRow(device, q, budget, len(feasible), proxy, pick,
                                     accuracy[pick], best, tau))
    return rows


def learned_columns(table: ProxyTable, counts: Sequence[int], seeds: int) -> list[str]:
    """Adds one column per (N, seed): the few-label ranker's predicted accuracy of every arch,
    fitted on N archs drawn at random with that seed from every proxy column and the graph
    features. The pick is by prediction alone, the labelled archs' included."""
    from edgescore.server.scoring.learned import (
        MIN_LABELS,
        LearnedError,
        LearnedRanker,
        feature_matrix,
    )

    x, names = feature_matrix(table.archs, "nb201", table.values)
    accuracy = np.array(table.accuracy)
    added = []
    for n in counts:
        if not MIN_LABELS <= n < len(table.archs):
            raise StudyError(f"--learned {n}: between {MIN_LABELS} and "
                             f"{len(table.archs) - 1} labels")
        for seed in range(seeds):
            labelled = np.random.default_rng(seed).permutation(len(accuracy))[:n]
            try:
                ranker = LearnedRanker.fit(x[labelled], accuracy[labelled], names)
            except LearnedError as exc:
                raise StudyError(f"--learned {n}: {exc}") from None
            name = learned_name(n, seed)
            table.values[name] = [float(v) for v in ranker.predict(x)]
            added.append(name)
    return added


def learned_name(n: int, seed: int) -> str:
    return f"learned(N={n}, seed {seed})"


# -- outputs -----------------------------------------------------------------------------------


def write_csv(rows: Sequence[StudyRow], path: Path, archs: Sequence[str],
              indices: Sequence[int]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["device", "quantile", "budget_ms", "feasible", "proxy", "picked_index",
                    "picked_arch", "picked_accuracy", "best_feasible_accuracy", "gap", "tau"])
        for r in rows:
            w.writerow([r.device, r.quantile, f"{r.budget_ms:.4f}", r.feasible, r.proxy,
                        indices[r.picked_index], archs[r.picked_index],
                        f"{r.picked_accuracy:.3f}", f"{r.best_accuracy:.3f}", f"{r.gap:.3f}",
                        f"{r.tau:.4f}"])


def _columns(rows: Sequence[StudyRow]) -> list[tuple[str, float]]:
    return list(dict.fromkeys((r.device, r.quantile) for r in rows))


def markdown(rows: Sequence[StudyRow], n_archs: int, source: str) -> str:
    cols = _columns(rows)
    proxies = list(dict.fromkeys(r.proxy for r in rows))
    cell = {(r.proxy, r.device, r.quantile): r for r in rows}
    lines = [
        f"Accuracy gap (best feasible − picked, percentage points) and Kendall τ inside the "
        f"feasible set; {n_archs} archs, latencies {source}. Budgets: the 25/50/75 % quantiles "
        "of each device's latencies.", "",
        "| proxy | " + " | ".join(f"{d} p{q:g}" for d, q in cols) + " | mean gap | mean τ |",
        "|---|" + "---:|" * (len(cols) + 2),
    ]
    for p in proxies:
        got = [cell.get((p, d, q)) for d, q in cols]
        gaps = [r.gap for r in got if r is not None]
        taus = [r.tau for r in got if r is not None and not math.isnan(r.tau)]
        cells = [f"{r.gap:.2f} / {r.tau:.2f}" if r is not None else "—" for r in got]
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {np.mean(gaps):.2f} | "
                     f"{np.mean(taus):.3f} |")
    draws: dict[str, list[float]] = {}
    for p in proxies:
        if p.startswith("learned(") and ", seed " in p:
            gaps = [r.gap for d, q in cols if (r := cell.get((p, d, q))) is not None]
            draws.setdefault(p.split(", seed ")[0] + ")", []).append(float(np.mean(gaps)))
    if draws:
        lines += ["", "Few-label ranker, mean gap over its seeds (mean ± sd of the draws' mean "
                  "gaps): " + "; ".join(f"{k} {np.mean(v):.2f} ± {np.std(v):.2f} "
                                         f"({len(v)} draws)" for k, v in draws.items())]
    lines += ["", "Budgets (ms) and feasible archs: " + "; ".join(
        f"{d} p{q:g} ≤ {next(r.budget_ms for r in rows if (r.device, r.quantile) == (d, q)):.3g}"
        f" ({next(r.feasible for r in rows if (r.device, r.quantile) == (d, q))})"
        for d, q in cols)]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[StudyRow], path: Path) -> Optional[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cols = _columns(rows)
    proxies = list(dict.fromkeys(r.proxy for r in rows))
    cell = {(r.proxy, r.device, r.quantile): r for r in rows}
    gap = np.array([[cell[(p, d, q)].gap if (p, d, q) in cell else np.nan for d, q in cols]
                    for p in proxies])
    tau = np.array([[cell[(p, d, q)].tau if (p, d, q) in cell else np.nan for d, q in cols]
                    for p in proxies])
    fig, axes = plt.subplots(1, 2, figsize=(6 + 0.9 * len(cols), 1.2 + 0.4 * len(proxies)),
                             constrained_layout=True)
    for ax, data, title, cmap in ((axes[0], gap, "accuracy gap (pp), lower is better", "Reds"),
                                  (axes[1], tau, "Kendall τ in the feasible set", "RdBu")):
        kw = {"vmin": -1, "vmax": 1} if cmap == "RdBu" else {}
        im = ax.imshow(data, aspect="auto", cmap=cmap, **kw)
        ax.set_xticks(range(len(cols)), [f"{d}\np{q:g}" for d, q in cols], fontsize=7)
        ax.set_yticks(range(len(proxies)), proxies, fontsize=7)
        ax.set_title(title, fontsize=9)
        for (y, x), v in np.ndenumerate(data):
            if not np.isnan(v):
                ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_study(config: StudyConfig) -> list[StudyRow]:
    unknown = [d for d in config.devices if d not in DEVICES]
    if unknown:
        raise StudyError(f"unknown device(s) {', '.join(unknown)}; known: {', '.join(DEVICES)}")
    if not config.hw_csv.is_file():
        raise StudyError(f"HW-NAS-Bench table not found: {config.hw_csv}")
    members = [m for _, ms in config.aggregates for m in ms]
    wanted = list(dict.fromkeys([*config.proxies, *members])) if config.proxies else None
    try:
        table = load_table(config.proxies_csvs, wanted, config.archs)
    except TableError as exc:
        raise StudyError(str(exc)) from None
    learned = learned_columns(table, config.learned, config.learned_seeds)
    names = [aggregate_column(table, method, ms) for method, ms in config.aggregates] + learned
    if config.proxies:  # members asked for only as members are not reported on their own
        table.values = {k: v for k, v in table.values.items() if k in config.proxies or k in names}
    config.log(f"{len(table.archs)} archs, {len(table.values)} proxies"
               + (f" (with {', '.join(names)})" if names else "")
               + f", devices {', '.join(config.devices)}")
    if config.offline:
        latencies = table_latencies(config.hw_csv, table.archs, config.devices)
        source = "read from the HW-NAS-Bench table"
    else:
        latencies = served_latencies(config.hw_csv, table.archs, config.devices, config.log)
        source = "served by HW-NAS-Bench replay agents through the server"
    rows = study(table.accuracy, table.values, latencies, config.quantiles)
    config.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, config.out / "study.csv", table.archs, table.indices)
    (config.out / "study.md").write_text(markdown(rows, len(table.archs), source))
    png = plot(rows, config.out / "study.png")
    config.log(f"wrote {config.out / 'study.csv'}, study.md" + (", study.png" if png else ""))
    return rows
