"""The evaluation's report: correlations per proxy, anchors, NASLib agreement, markdown and PNG."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgescore.evaluation import stats
from edgescore.evaluation.records import EvalRun

# Our proxy name -> the names other tables use for the same quantity. Our `flops` counts MACs,
# which is what Deeplite's `macs` is.
ANCHOR_NAMES: dict[str, tuple[str, ...]] = {"flops": ("flops", "macs"),
                                            "jacov": ("jacov", "jacob_cov")}
NASLIB_NAMES: dict[str, str] = {"jacob_cov": "jacov", "naswot": "nwot"}
NASLIB_COLUMNS = ("zen", "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm",
                  "nwot", "params", "plain", "snip", "synflow")
# NASLib stores NaN/inf results as -1e8: a failure marker, not a score.
NASLIB_SENTINEL = -1e8

NaslibScores = dict[int, dict[str, float]]


@dataclass(frozen=True)
class Anchor:
    source: str
    statistic: str  # abs_spearman or kendall
    archs: int
    value: float


@dataclass
class ProxySummary:
    name: str
    n: int
    rho: float
    tau: float
    rho_ci: tuple[float, float]
    errors: int
    first_error: str
    ref_rho: Optional[Anchor] = None
    ref_tau: Optional[Anchor] = None
    naslib_rho: float = math.nan
    naslib_n: int = 0

    @property
    def delta(self) -> float:
        """|rho_ours| - rho_ref: positive means we rank better than the published figure."""
        return abs(self.rho) - self.ref_rho.value if self.ref_rho else math.nan


def read_naslib(path: Path, dataset: str) -> NaslibScores:
    """index -> {naslib column: value} for one dataset; {} when the file is absent."""
    if not path.is_file():
        return {}
    out: NaslibScores = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("dataset") != dataset:
                continue
            scores = {}
            for col in NASLIB_COLUMNS:
                text = row.get(col) or ""
                if text:
                    value = float(text)
                    if math.isfinite(value) and value > NASLIB_SENTINEL / 2:
                        scores[col] = value
            out[int(row["index"])] = scores
    return out


def read_anchors(path: Optional[Path], space: str, dataset: str) -> dict[str, list[Anchor]]:
    """proxy name (as the anchors spell it) -> published figures for this space and dataset."""
    if path is None or not path.is_file():
        return {}
    out: dict[str, list[Anchor]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["space"] != space or row["dataset"].lower() != dataset:
                continue
            out.setdefault(row["proxy"], []).append(
                Anchor(row["source"], row["statistic"], int(row["archs"]), float(row["value"])))
    return out


def _anchor(anchors: dict[str, list[Anchor]], proxy: str, statistic: str) -> Optional[Anchor]:
    for name in ANCHOR_NAMES.get(proxy, (proxy,)):
        for anchor in anchors.get(name, ()):
            if anchor.statistic == statistic:
                return anchor
    return None


def summarise(run: EvalRun, naslib: NaslibScores,
              anchors: dict[str, list[Anchor]]) -> list[ProxySummary]:
    accuracy = [r.accuracy for r in run.rows]
    out = []
    for name in run.proxies:
        values = [r.values.get(name) for r in run.rows]
        x, y = stats.paired(values, accuracy)
        rho = stats.spearman(x, y) if len(x) >= 2 else math.nan
        tau = stats.kendall_tau(x, y) if len(x) >= 2 else math.nan
        failed = [r.errors[name] for r in run.rows if name in r.errors]
        summary = ProxySummary(name, len(x), rho, tau, stats.spearman_ci(rho, len(x)),
                               len(failed), failed[0] if failed else "",
                               _anchor(anchors, name, "abs_spearman"),
                               _anchor(anchors, name, "kendall"))
        column = NASLIB_NAMES.get(name, name)
        if column in NASLIB_COLUMNS:
            ours, theirs = stats.paired(
                values, [naslib.get(r.index, {}).get(column) for r in run.rows])
            summary.naslib_n = len(ours)
            if len(ours) >= 3:
                summary.naslib_rho = stats.spearman(ours, theirs)
        out.append(summary)
    return out


def _f(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def table_rows(summaries: Sequence[ProxySummary]) -> list[list[str]]:
    rows = [["proxy", "n valid", "ρ", "ρ 95% CI", "τ", "ref |ρ|", "|ρ|−ref", "ref τ",
             "NASLib ρ (n)", "failed"]]
    for s in summaries:
        naslib = f"{_f(s.naslib_rho)} ({s.naslib_n})" if s.naslib_n else "—"
        rows.append([s.name, str(s.n), _f(s.rho), f"[{_f(s.rho_ci[0], 2)}, {_f(s.rho_ci[1], 2)}]",
                     _f(s.tau), _f(s.ref_rho.value) if s.ref_rho else "—", _f(s.delta, signed=True),
                     _f(s.ref_tau.value) if s.ref_tau else "—", naslib, str(s.errors)])
    return rows


def markdown(run: EvalRun, summaries: Sequence[ProxySummary]) -> str:
    cfg, spec = run.config, run.spec
    rows = table_rows(summaries)
    lines = [
        f"# Proxy evaluation: {cfg.space} / {spec.name}, {len(run.rows)} archs, seed {cfg.seed}",
        "",
        f"Ground truth: `{spec.accuracy_column}` of accuracy_dev.csv (NB201, 200 epochs). "
        f"Network: {spec.num_classes} classes, input {spec.input_resolution}×"
        f"{spec.input_resolution}; device `{cfg.device}`. Archs: a seeded random sample "
        f"(seed {cfg.seed}){' of those NASLib scored' if cfg.within_naslib else ''}.",
        "",
        "ρ: Spearman, τ: Kendall τ-b, both signed (every served proxy is higher-is-better); "
        "95% CI of ρ by Fisher's z (SE 1.06/√(n−3)). ref |ρ|: SamsungLabs zero-cost-nas, |ρ| over "
        "all 15,625 archs; ref τ: Deeplite PR 323, 500 archs (CIFAR-100 only). NASLib ρ: Spearman "
        "between our values and NASLib's (naslib_zc_scores.csv) on the sampled archs both have "
        "(n in brackets; NASLib's -1e8 failure markers left out).",
        "",
        "| " + " | ".join(c.replace("|", "\\|") for c in rows[0]) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    lines += ["", "## Settings per proxy", "",
              "| proxy | batch | data | init | repeats | seed | extra |",
              "|---|---:|---|---|---:|---:|---|"]
    for name, s in run.proxy_settings.items():
        extra = ", ".join(f"{k}={v}" for k, v in s["extra"].items()) or "—"
        lines.append(f"| {name} | {s['batch_size']} | {s['data_kind']} | {s['init']} | "
                     f"{s['repeats']} | {s['seed']} | {extra} |")
    flagged: dict[str, int] = {}
    for r in run.rows:
        for flag in r.flags:
            flagged[flag] = flagged.get(flag, 0) + 1
    notes = [f"- `{flag}` on {n} of {len(run.rows)} archs" for flag, n in sorted(flagged.items())]
    notes += [f"- {s.name}: {s.errors} failure(s), e.g. {s.first_error[:200]}"
              for s in summaries if s.errors]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", f"Per-arch values: `{run.files['csv'].name}` (settings key `{run.settings_key}`)."
              f" Computed {run.computed} archs this run, reused {run.reused}.", ""]
    return "\n".join(lines)


def plot(run: EvalRun, summaries: Sequence[ProxySummary], path: Path) -> Optional[Path]:
    """Bar chart of τ per proxy and a scatter of the best proxy against accuracy."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    ranked = sorted((s for s in summaries if math.isfinite(s.tau)), key=lambda s: s.tau)
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(12, max(4.0, 0.35 * len(ranked) + 1.5)))
    if ranked:
        bars.barh([s.name for s in ranked], [s.tau for s in ranked],
                  color=["tab:blue" if s.tau >= 0 else "tab:red" for s in ranked])
        for s in ranked:
            if s.ref_tau is not None:
                bars.plot(s.ref_tau.value, s.name, "k|", markersize=14)
    bars.axvline(0.0, color="grey", linewidth=0.8)
    bars.set_xlim(-1.0, 1.0)  # the same scale in every report, so runs compare at a glance
    bars.set_xlabel(f"Kendall τ vs {run.spec.accuracy_column}  (| = published τ)")
    bars.set_title(f"{run.config.space}/{run.spec.name}, {len(run.rows)} archs, "
                   f"seed {run.config.seed}")
    if ranked:
        best = ranked[-1]
        xy = [(r.values[best.name], r.accuracy) for r in run.rows
              if r.values.get(best.name) is not None]
        scatter.scatter([a for a, _ in xy], [b for _, b in xy], s=12, alpha=0.7)
        scatter.set_xlabel(f"{best.name}")
        scatter.set_title(f"best: {best.name} (ρ {best.rho:.3f}, τ {best.tau:.3f})")
    scatter.set_ylabel(f"{run.spec.accuracy_column} (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def console_table(summaries: Sequence[ProxySummary]) -> str:
    rows = table_rows(summaries)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(run: EvalRun, naslib: NaslibScores, anchors_path: Optional[Path],
                 log: Callable[[str], None] = print) -> list[ProxySummary]:
    anchors = read_anchors(anchors_path, run.config.space, run.spec.name)
    if not anchors:
        log(f"no anchors for {run.config.space}/{run.spec.name} "
            f"({anchors_path or 'no --anchors file'})")
    summaries = summarise(run, naslib, anchors)
    md_path = run.out_dir / "report.md"
    run.files["md"] = md_path
    png = plot(run, summaries, run.out_dir / "correlations.png")
    if png is None:
        log("matplotlib is not installed: no PNG (pip install 'edgescore[server]')")
    else:
        run.files["png"] = png
    md_path.write_text(markdown(run, summaries))
    log("")
    log(console_table(summaries))
    log("")
    log("written: " + ", ".join(str(p) for p in run.files.values()))
    return summaries
