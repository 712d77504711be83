"""Searches compared by the hypervolume of what they find: NSGA-II, TPE and random search
(Optuna's samplers, edgescore.integrations.optuna) and our regularized evolution, each with the
same budget of evaluated archs and the same seeds, over NB201's dev split with HW-NAS-Bench's
Raspberry Pi 4 latencies replayed by an agent behind a real local server.

Every search optimises what it can measure without training: the proxy (synflow by default)
and the replayed latency. NSGA-II, TPE and random run the two-valued `pareto` objective (proxy
up, latency down); evolution needs one fitness and runs its `constraint` objective (feasible
first, then the proxy) under a budget of the table's median latency, and so do `tpe-constraint`
and `nsga2-constraint` (Optuna's samplers on evolution's task, if listed in --algos). Each run is
then judged on the dev table's true CIFAR-10 accuracy and latency:

- hv_front: the hypervolume of the archs on the run's own (proxy, latency) Pareto front: what
  a zero-shot search hands over without training anything;
- hv_evaluated: the hypervolume of every arch it evaluated;
- pick_accuracy / pick_gap: under the median-latency budget, the accuracy of the arch with the
  best proxy among the feasible archs it evaluated (what the constrained search returns), and
  its gap to the best feasible arch of the table; best_feasible_proxy: that proxy value.

Hypervolume box (client.search_report.hypervolume_box): latency 0 .. the slowest arch of the
table, accuracy the table's 10th percentile .. 100 %, both scaled to [0, 1]; the reference
point is (slowest latency, 10th-percentile accuracy). runs.csv gets one row per (algo, seed) as
it finishes and a rerun skips those; the server's store (--db) keeps proxy values and latencies,
so a rerun, or a run that meets an arch an earlier one scored, costs no computation.

    .venv/bin/python benchmarks/search_hypervolume.py --seeds 5 --budget 200 \\
        --out docs/evaluation/search-hv-nb201-raspi4      # about 1 s per new arch on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from pathlib import Path
from typing import Any

from edgescore.client.launcher import LocalStack
from edgescore.client.search import SearchConfig, SearchResult, run_search
from edgescore.client.search_report import hypervolume_box, hypervolumes, read_column
from edgescore.client.search_spaces import WithinList, sampler_for
from edgescore.integrations.optuna import run_study

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"
FIELDS = ("algo", "seed", "budget", "evaluated", "failed", "trials", "front_size", "hv_front",
          "hv_evaluated", "hv_table", "pick_accuracy", "pick_gap", "best_feasible_proxy",
          "seconds")
METRICS = ("hv_front", "hv_evaluated", "pick_accuracy", "pick_gap", "best_feasible_proxy",
           "evaluated", "trials", "seconds")


def one_run(client: Any, algo: str, seed: int, args: argparse.Namespace, archs: list[str],
            budget_ms: float) -> tuple[SearchResult, int]:
    """A search's result and the trials (candidates drawn) it took. `tpe-constraint` (any
    Optuna algo with that suffix): the sampler on evolution's task, the proxy under the
    median-latency budget as an Optuna constraint."""
    base, _, task = algo.partition("-")
    config = SearchConfig(space="nb201", algo=base, budget=args.budget, proxy=args.proxy,
                          device=args.device, seed=seed, max_in_flight=1,
                          population=args.population, objective=task or "pareto")
    if base == "evolution" or task == "constraint":
        config.objective, config.latency_ms = "constraint", budget_ms
    if base == "evolution":
        sampler = WithinList(sampler_for("nb201"), archs)
        result = run_search(client, config, sampler)
        return result, len(result.records)
    outcome = run_study(client, config, within=set(archs))
    return outcome.result, len(outcome.study.trials)


def measure(result: SearchResult, accuracy: dict[str, float], latency: dict[str, float],
            budget_ms: float) -> dict[str, Any]:
    volumes = hypervolumes(result, accuracy, latency)
    assert volumes is not None, "no arch of the run is in the tables"
    ok = [r for r in result.records if not r.error]
    feasible = [r for r in ok if r.latency_ms <= budget_ms]
    pick = max(feasible, key=lambda r: r.proxy, default=None)
    best = max(a for arch, a in accuracy.items() if latency[arch] <= budget_ms)
    pick_accuracy = accuracy[pick.spec_text()] if pick else math.nan
    return {"evaluated": len(result.records), "failed": len(result.records) - len(ok),
            "front_size": volumes.front_size, "hv_front": volumes.front,
            "hv_evaluated": volumes.evaluated, "hv_table": volumes.table,
            "pick_accuracy": pick_accuracy, "pick_gap": best - pick_accuracy,
            "best_feasible_proxy": pick.proxy if pick else math.nan}


def summary(rows: list[dict[str, str]], args: argparse.Namespace, box: Any,
            budget_ms: float) -> str:
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    lines = [f"# Search hypervolume: NB201 dev split, {args.device} replay, {args.proxy}", "",
             f"budget {args.budget} evaluated archs per run (a run that reaches Optuna's trial "
             f"cap first ends short of it: see `evaluated`); reference point: "
             f"{box[1][0]:.2f} % accuracy, {box[0][1]:.2f} ms; the table's own hypervolume "
             f"{float(rows[0]['hv_table']):.4f}; pick: best {args.proxy} under "
             f"{budget_ms:.2f} ms (the table's median latency); mean ± sd over seeds", "",
             "| algo | seeds | " + " | ".join(METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for algo in algos:
        mine = [r for r in rows if r["algo"] == algo]
        cells = []
        for metric in METRICS:
            values = [float(r[metric]) for r in mine if r[metric] not in ("", "nan")]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = (4 if metric.startswith("hv") else
                      0 if metric in ("evaluated", "trials") else 2)
            cells.append(f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"
                         if values else "")
        lines.append(f"| {algo} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_all(todo: list[tuple[int, str]], args: argparse.Namespace, archs: list[str],
            accuracy: dict[str, float], latency: dict[str, float], budget_ms: float,
            runs_csv: Path) -> None:
    """Each (seed, algo) through one local server and replay agent, a row of runs.csv each."""
    hw_csv = args.data / "hw_nas_bench_c10_dev.csv"
    db = args.db or args.out / "results.db"
    with LocalStack(agents={}, server_args=["--db", str(db)]) as stack:
        stack.start_agent(args.device, extra=["--replay", "hw-nas-bench", "--csv", str(hw_csv),
                                              "--device", args.device])
        stack.wait_for_agents({args.device: 1})
        with stack.client() as client:
            for seed, algo in todo:  # seed-major: a cut-short run has whole seeds
                start = time.monotonic()
                result, trials = one_run(client, algo, seed, args, archs, budget_ms)
                row = {"algo": algo, "seed": seed, "budget": args.budget, "trials": trials,
                       **measure(result, accuracy, latency, budget_ms),
                       "seconds": round(time.monotonic() - start, 1)}
                new = not runs_csv.exists()
                with runs_csv.open("a", newline="") as fh:
                    writer = csv.DictWriter(fh, FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
                print(f"{algo} seed {seed}: hv_front {row['hv_front']:.4f}, hv_evaluated "
                      f"{row['hv_evaluated']:.4f}, {row['seconds']} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="nsga2,tpe,random,evolution")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--population", type=int, default=20, help="NSGA-II's and evolution's")
    p.add_argument("--proxy", default="synflow")
    p.add_argument("--device", default="raspi4")
    p.add_argument("--accuracy-column", default="c10_test")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--db", type=Path, help="the server's store (default OUT/results.db)")
    p.add_argument("--out", type=Path, default=Path("out") / "search-hv")
    args = p.parse_args()
    hw_csv = args.data / "hw_nas_bench_c10_dev.csv"
    accuracy = read_column(args.data / "accuracy_dev.csv", args.accuracy_column)
    latency = read_column(hw_csv, f"c10_{args.device}_latency")
    archs = sorted(accuracy.keys() & latency.keys())
    lats = sorted(latency[a] for a in archs)
    budget_ms = lats[len(lats) // 2]
    box = hypervolume_box((latency[a], accuracy[a]) for a in archs)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_csv = args.out / "runs.csv"
    done = list(csv.DictReader(runs_csv.open())) if runs_csv.exists() else []
    todo = [(seed, algo) for seed in range(args.seeds) for algo in args.algos.split(",")
            if not any(r["algo"] == algo and r["seed"] == str(seed) for r in done)]
    if todo:  # else every row is in runs.csv: only the summary is written again
        run_all(todo, args, archs, accuracy, latency, budget_ms, runs_csv)
    rows = list(csv.DictReader(runs_csv.open()))
    (args.out / "summary.md").write_text(summary(rows, args, box, budget_ms))
    print(summary(rows, args, box, budget_ms))


if __name__ == "__main__":
    main()
