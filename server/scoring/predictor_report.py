"""Accuracy of the latency predictor on a benchmark's measured latencies (docs/predictor.md).

    python -m edgescore.server.scoring.predictor_report \
        --csv ../shared/data/nb201/hw_nas_bench_c10_dev.csv --device raspi4 --archs 1000
    python -m edgescore.server.scoring.predictor_report --space fbnet \
        --csv ../shared/data/fbnet/help_latency_27devices_dev.csv --device raspi4 --archs 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict

import numpy as np

from edgescore.server.scoring.predictor import accuracy_report


def load(path: str, device: str, archs: int, seed: int) -> tuple[list[str], list[float]]:
    """`archs` rows drawn with `seed` among those that have a latency for `device`; the column is
    `c10_<device>_latency` (HW-NAS-Bench) or `<device>_ms` (HELP); the arch is column `arch`, or
    `arch_str` (HELP's FBNet table)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (f"c10_{device}_latency", f"{device}_ms", device) if c in rows[0]]
    if not columns:
        raise SystemExit(f"no latency column for device {device!r} in {path}")
    arch = "arch" if "arch" in rows[0] else "arch_str"
    rows = [r for r in rows if r[columns[0]] not in ("", "-1")]
    chosen = np.random.default_rng(seed).permutation(len(rows))[:archs]
    return [rows[i][arch] for i in chosen], [float(rows[i][columns[0]]) for i in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True,
                        help="CSV with an `arch` (or `arch_str`) column of the space's specs")
    parser.add_argument("--space", default="nb201", help="nb201 or fbnet")
    parser.add_argument("--device", default="raspi4")
    parser.add_argument("--archs", type=int, default=1000, help="how many rows to use")
    parser.add_argument("--train-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    archs, latencies = load(args.csv, args.device, args.archs, args.seed)
    report = accuracy_report(archs, latencies, args.train_fraction, args.seed, space=args.space)
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps({**asdict(report), "space": args.space, "device": args.device,
                          "total_seconds": total}))
        return 0
    print(f"{args.space}, device {args.device}: {len(archs)} archs, train {report.n_train}, "
          f"test {report.n_test} (seed {args.seed})")
    print(f"  Spearman rho          {report.spearman:.4f}")
    print(f"  MAPE                  {report.mape:.2f} %")
    print(f"  median APE            {report.median_ape:.2f} %")
    print(f"  within +-10 %         {report.within_10pct:.1f} %")
    print(f"  10-90 % interval hit  {report.interval_coverage:.1f} %")
    print(f"  fit {report.fit_seconds:.1f} s, total {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
