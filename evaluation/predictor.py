"""`edgescore eval predictor`: cross-device transfer, leave one device out.

For each target device of a DeviceTable (HELP's 27 settings by default): the transfer basis is
learnt from the other devices only, on one seeded half of the archs (the prior's archs); the
target's k measurements are drawn from all archs (10 seeds); Spearman and MAPE are taken on the
other half's archs that were not among the k: archs neither the basis nor the target's fit saw.
With `--hold-out family` the target's other batch sizes (titan_rtx_1 for titan_rtx_256) leave the
prior too. Baselines on the same test archs: MACs alone, and with `--scratch` (slow, k >= 20)
the device's own gradient boosting alone ("scratch") and with the transfer's prediction as one
more feature ("stacked", what the server answers from 200 points on).
"""

from __future__ import annotations

import csv
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgescore.evaluation.stats import spearman
from edgescore.server.scoring.predictor import LatencyPredictor, default_featurize
from edgescore.server.scoring.transfer import (
    DeviceTable,
    TransferBasis,
    TransferFit,
    stacked_model,
    with_transfer,
)

# HELP (Lee et al., NeurIPS 2021), 10 measurements of the unseen device, Spearman.
HELP_AT_10 = {("nb201", "raspi4"): 0.890, ("nb201", "pixel2"): 0.802,
              ("nb201", "gold_6226"): 0.989, ("nb201", "titan_rtx_256"): 0.987,
              ("nb201", "eyeriss"): 0.940, ("nb201", "fpga"): 0.985,
              ("fbnet", "raspi4"): 0.887}


@dataclass(frozen=True)
class Row:
    device: str
    k: int
    method: str  # transfer | scratch | macs
    spearman: float
    spearman_sd: float
    mape: float  # %
    coverage: float  # % of truths inside the 10-90 % interval (NaN: no interval)
    n_test: int


def family(device: str, devices: Sequence[str]) -> set[str]:
    """The device and its other batch sizes (`<name>_<N>` where `<name>_1` exists too)."""
    match = re.fullmatch(r"(.+)_(\d+)", device)
    if match and f"{match.group(1)}_1" in devices:
        return {d for d in devices if re.fullmatch(re.escape(match.group(1)) + r"_\d+", d)}
    return {device}


def _summary(device: str, k: int, method: str, rhos: list[float], mapes: list[float],
             coverages: list[float], n_test: int) -> Row:
    return Row(device, k, method, float(np.mean(rhos)), float(np.std(rhos)),
               float(np.mean(mapes)), float(np.mean(coverages)) if coverages else math.nan,
               n_test)


def evaluate_device(table: DeviceTable, target: str, features: list[dict[str, float]],
                    ks: Sequence[int], seeds: int, *, rank: int, hold_out: str,
                    scratch: bool, split_seed: int = 0) -> list[Row]:
    n = len(table.archs)
    order = np.random.default_rng(split_seed).permutation(n)
    prior_archs, test_pool = order[: n // 2], order[n // 2:]
    excluded = family(target, table.devices) if hold_out == "family" else {target}
    by_arch = dict(zip(table.archs, features))
    basis = TransferBasis(table.rows(prior_archs).without(sorted(excluded)), by_arch.__getitem__,
                          rank=rank)
    embedding = basis.embed(features)
    truth = table.column(target)
    macs = np.asarray([f.get("macs_m", 0.0) for f in features])
    rows = []
    for k in ks:
        results: dict[str, tuple[list, list, list]] = {m: ([], [], []) for m in
                                                        ("transfer", "scratch", "macs")}
        n_test = 0
        for seed in range(seeds):
            train = np.random.default_rng(1000 + seed).choice(n, size=k, replace=False)
            test = np.setdiff1d(test_pool, train)
            n_test = len(test)
            fit = TransferFit(basis, embedding[train], truth[train])
            median, low, high = fit.predict_ms(embedding[test])
            _record(results["transfer"], median, truth[test], low, high)
            _record(results["macs"], macs[test], truth[test], latency=False)
            if scratch and k >= 20:
                model = LatencyPredictor(min_points=k, seed=seed)
                for i in train:
                    model.add(features[i], float(truth[i]))
                predictions = model.predict_many([features[i] for i in test]) or []
                _record(results["scratch"], np.asarray([p.median_ms for p in predictions]),
                        truth[test])
                model = stacked_model(LatencyPredictor, fit, embedding[train],
                                      [features[i] for i in train], truth[train], seed=seed)
                predictions = model.predict_many(
                    with_transfer([features[i] for i in test], np.log(median))) or []
                _record(results.setdefault("stacked", ([], [], [])),
                        np.asarray([p.median_ms for p in predictions]), truth[test])
        rows += [_summary(target, k, method, *values, n_test)
                 for method, values in results.items() if values[0]]
    return rows


def _record(into: tuple[list, list, list], predicted: np.ndarray, truth: np.ndarray,
            low: Optional[np.ndarray] = None, high: Optional[np.ndarray] = None, *,
            latency: bool = True) -> None:
    rhos, mapes, coverages = into
    rhos.append(spearman(predicted, truth))
    # MACs are not a latency: their percentage error would mean nothing.
    mapes.append(100 * float(np.mean(np.abs(predicted - truth) / truth)) if latency
                 else math.nan)
    if low is not None and high is not None:
        coverages.append(100 * float(np.mean((low <= truth) & (truth <= high))))


def run(table: DeviceTable, *, devices: Sequence[str] = (), ks: Sequence[int] = (5, 10, 20, 100),
        seeds: int = 10, rank: int = 6, hold_out: str = "device", scratch: bool = False,
        featurize: Optional[Callable[[str, str], dict]] = None,
        progress: Callable[[str], None] = print) -> list[Row]:
    featurize = featurize or default_featurize
    features = [dict(featurize(table.space, a)) for a in table.archs]
    rows: list[Row] = []
    for device in devices or table.devices:
        started = time.perf_counter()
        device_rows = evaluate_device(table, device, features, ks, seeds, rank=rank,
                                      hold_out=hold_out, scratch=scratch)
        rows += device_rows
        shown = ", ".join(f"k={r.k} {r.spearman:.3f}" for r in device_rows
                          if r.method == "transfer")
        progress(f"{device}: {shown} ({time.perf_counter() - started:.0f} s)")
    return rows


def write(rows: Sequence[Row], out: Path, space: str, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "per_device.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(Row.__dataclass_fields__)
        for r in rows:
            writer.writerow([r.device, r.k, r.method, f"{r.spearman:.4f}", f"{r.spearman_sd:.4f}",
                             f"{r.mape:.2f}", f"{r.coverage:.1f}", r.n_test])
    (out / "report.md").write_text(report(rows, space, command))


def report(rows: Sequence[Row], space: str, command: str) -> str:
    ks = sorted({r.k for r in rows})
    methods = [m for m in ("transfer", "scratch", "stacked", "macs")
               if any(r.method == m for r in rows)]
    lines = [f"# Latency transfer, leave one device out ({space})", "", f"    {command}", "",
             "Spearman (mean over seeds) on the target's archs that neither the prior nor the "
             "fit saw; MAPE %; coverage of the 10-90 % interval %. HELP: its published "
             "Spearman at k = 10.", ""]
    header = ["device", "HELP@10"] + [f"k={k}" for k in ks] + [f"MAPE k={k}" for k in ks] + [
        f"cover k={k}" for k in ks]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    transfer = [r for r in rows if r.method == "transfer"]
    for device in dict.fromkeys(r.device for r in transfer):
        mine = {r.k: r for r in transfer if r.device == device}
        help_value = HELP_AT_10.get((space, device))
        cells = [device, f"{help_value:.3f}" if help_value else ""]
        cells += [f"{mine[k].spearman:.3f}" for k in ks]
        cells += [f"{mine[k].mape:.1f}" for k in ks] + [f"{mine[k].coverage:.0f}" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean Spearman over the devices, by method:", "",
              "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
              "|---|" + "---|" * len(ks)]
    for method in methods:
        cells = []
        for k in ks:
            values = [r.spearman for r in rows if r.method == method and r.k == k]
            cells.append(f"{np.mean(values):.3f}" if values else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
