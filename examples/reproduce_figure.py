"""Reproduce one figure without a notebook: synflow and #Params against CIFAR-10 accuracy on the
1,000 NB201 archs of docs/evaluation/ (values computed by `edgescore eval proxies`), with each
proxy's Spearman rho beside the published figure it must match (../shared/anchors).

    python examples/reproduce_figure.py [--out synflow_vs_accuracy.png]

Needs numpy, scipy and matplotlib only (no server, no torch).
"""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PER_ARCH = ROOT / "docs" / "evaluation" / "nb201-cifar10-1000-seed42" / "per_arch.csv"
ANCHORS = ROOT.parent / "shared" / "anchors" / "reference_correlations.csv"

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("synflow_vs_accuracy.png"))
args = parser.parse_args()

with PER_ARCH.open() as fh:
    rows = [r for r in csv.DictReader(fh) if r["synflow"] and r["params"]]
published = {}
if ANCHORS.exists():
    with ANCHORS.open() as fh:
        published = {r["proxy"]: float(r["value"]) for r in csv.DictReader(fh)
                     if r["source"] == "samsung_zero_cost_nas_notebook" and r["space"] == "nb201"
                     and r["dataset"] == "cifar10" and r["statistic"] == "abs_spearman"}

accuracy = [float(r["accuracy"]) for r in rows]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
for ax, proxy in zip(axes, ("synflow", "params")):
    values = [float(r[proxy]) for r in rows]
    rho = spearmanr(values, accuracy)[0]
    ref = published.get(proxy)
    note = f" (published {ref:.3f})" if ref is not None else ""
    print(f"{proxy}: Spearman rho {rho:.3f} over {len(rows)} archs{note}")
    ax.scatter(values, accuracy, s=4, alpha=0.5)
    ax.set_xscale("log" if proxy == "params" else "linear")
    ax.set_xlabel(proxy)
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_ylim(60, 96)
    ax.set_title(f"{proxy}: rho = {rho:.3f}{note}")
fig.tight_layout()
fig.savefig(args.out)
print(f"wrote {args.out}")
