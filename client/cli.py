"""`edgescore`: the command-line client."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

from edgescore.client.api import Client
from edgescore.client.errors import EdgescoreError
from edgescore.client.results import ScoreResult

DEFAULT_SERVER = "127.0.0.1:50051"

# Five NB201 cells spanning the space: the best-known cell, a ResNet-like one, a pooling-heavy
# one, a cheap 1x1 one, and one with `none` edges.
DEMO_ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|",
    "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
]
DEMO_PROXIES = ["params", "flops", "synflow", "naswot"]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "failed"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.4e}"


def results_table(results: Sequence[ScoreResult], proxies: Sequence[str],
                  devices: Sequence[str]) -> str:
    header = ["arch", *proxies]
    for d in devices:
        header += [f"{d} median ms", "p90 ms", "n", "source"]
    rows = [header]
    for r in results:
        row = [r.canonical_arch]
        row += [_num(r.proxies[p].value) if p in r.proxies else "-" for p in proxies]
        for d in devices:
            lat = r.latencies.get(d)
            if lat is None or not lat.ok:
                row += ["failed" if lat else "-", "", "", lat.message[:40] if lat else ""]
            else:
                row += [f"{lat.median_ms:.3f}", f"{lat.p90_ms:.3f}", str(lat.n),
                        f"{lat.provenance.lower()} by {lat.agent_id}"]
        rows.append(row)
    return format_table(rows)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _measurement(ns: argparse.Namespace) -> dict:
    keys = ("warmup_runs", "min_runs", "min_seconds", "max_seconds", "threads")
    return {k: getattr(ns, k) for k in keys if getattr(ns, k, None) is not None}


def cmd_score(ns: argparse.Namespace) -> int:
    with Client(ns.server, token=ns.token) as client:
        result = client.score(ns.arch, _split(ns.proxies), _split(ns.device or ""),
                              seed=ns.seed, measurement=_measurement(ns))
    if ns.json:
        print(json.dumps(asdict(result), default=str, indent=2))
    else:
        print(results_table([result], _split(ns.proxies), _split(ns.device or "")))
        for p in result.proxies.values():
            if not p.ok:
                print(f"proxy {p.name}: {p.code.name}: {p.message}")
    return 0


def cmd_proxies(ns: argparse.Namespace) -> int:
    with Client(ns.server, token=ns.token) as client:
        rows = [["proxy", "unit", "transform", "data", "description"]]
        for p in client.proxies():
            rows.append([p.name, p.unit, p.transform, "yes" if p.needs_data else "no",
                         p.description.split(". ")[0][:70]])
    print(format_table(rows))
    return 0


def cmd_spaces(ns: argparse.Namespace) -> int:
    with Client(ns.server, token=ns.token) as client:
        rows = [["space", "available", "description"]]
        rows += [[s.name, "yes" if s.available else "reserved", s.description[:70]]
                 for s in client.spaces()]
    print(format_table(rows))
    return 0


def cmd_devices(ns: argparse.Namespace) -> int:
    with Client(ns.server, token=ns.token) as client:
        rows = [["device class", "online", "busy", "queue", "done", "runtimes"]]
        rows += [[d.device_class, str(d.agents_online), str(d.agents_busy), str(d.queue_depth),
                  str(d.measurements_done), ", ".join(d.runtimes)] for d in client.devices()]
    print(format_table(rows))
    return 0


def cmd_demo(ns: argparse.Namespace) -> int:
    from edgescore.client.launcher import LocalStack

    print("starting a local edgescore-server and one edgescore-agent (device class local-cpu)...")
    with LocalStack(agents={"local-cpu": 1}) as stack, Client(stack.target) as client:
        print(f"server on {stack.target}, metrics on http://127.0.0.1:{stack.metrics_port}/metrics")
        measurement = {"warmup_runs": 5, "min_runs": 30, "min_seconds": 0.3}
        results = []
        for i, arch in enumerate(DEMO_ARCHS, 1):
            print(f"[{i}/{len(DEMO_ARCHS)}] scoring {arch}", flush=True)
            results.append(client.score(arch, DEMO_PROXIES, ["local-cpu"], seed=0,
                                        measurement=measurement))
    print()
    print(results_table(results, DEMO_PROXIES, ["local-cpu"]))
    print("\nproxies: higher is better (params, flops = MACs, synflow = log, naswot = log|K|);"
          " latency measured by the agent with onnxruntime.")
    return 0


def _needs_server(command: str, exc: ImportError) -> int:
    # Server-side code (torch) is imported only inside such commands: the client stays light.
    print(f"error: `edgescore {command}` runs server code locally and needs the server extra "
          f"(torch): pip install 'edgescore[server]' ({exc})", file=sys.stderr)
    return 2


def cmd_eval_proxies(ns: argparse.Namespace) -> int:
    try:
        from edgescore.server.evaluation import EvalConfig, EvalError, run_eval
    except ImportError as exc:
        return _needs_server("eval proxies", exc)
    config = EvalConfig(
        space=ns.space, dataset=ns.dataset, archs=ns.archs, seed=ns.seed,
        proxies=_split(ns.proxies) or None, workers=ns.workers, out=ns.out, device=ns.device,
        csv=ns.csv, anchors=ns.anchors, naslib=ns.naslib, within_naslib=ns.within_naslib,
        progress=not ns.no_progress)
    try:
        run_eval(config)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished archs are saved; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


def cmd_eval_hw_study(ns: argparse.Namespace) -> int:
    try:
        from edgescore.server.evaluation import hw_study, nb201_eval
    except ImportError as exc:
        return _needs_server("eval hw-study", exc)
    proxies_csv = ns.proxies_csv or nb201_eval.default_study_proxies_csv()
    hw_csv = ns.hw_csv or nb201_eval.default_hw_csv()
    if proxies_csv is None or hw_csv is None:
        print("error: give --proxies-csv (from `edgescore eval proxies`) and --hw-csv "
              "(hw_nas_bench_c10_dev.csv)", file=sys.stderr)
        return 2
    config = hw_study.StudyConfig(
        proxies_csv=proxies_csv, hw_csv=hw_csv, out=ns.out,
        devices=_split(ns.devices) or hw_study.DEVICES,
        quantiles=[float(q) for q in _split(ns.quantiles)] or hw_study.QUANTILES,
        proxies=_split(ns.proxies) or None, ensemble=_split(ns.ensemble),
        offline=ns.offline, archs=ns.archs)
    try:
        hw_study.run_study(config)
    except hw_study.StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((ns.out / "study.md").read_text())
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from pathlib import Path

    evaluate = sub.add_parser("eval", help="offline evaluation (needs edgescore[server])")
    what = evaluate.add_subparsers(dest="what", required=True)
    p = what.add_parser(
        "proxies", help="rank correlation of proxies with trained accuracy on a seeded sample",
        description="Compute proxies in-process for a seeded sample of accuracy_dev.csv and "
                    "compare them (Spearman, Kendall) with trained accuracy, published figures "
                    "and NASLib's values. Resumable: rerun the same command after a stop.")
    p.add_argument("--space", default="nb201")
    p.add_argument("--dataset", default="cifar10",
                   help="cifar10 | cifar100 | imagenet16-120 (ground truth and class count)")
    p.add_argument("--archs", type=int, default=100, help="archs to sample (default 100)")
    p.add_argument("--seed", type=int, default=42,
                   help="seed of the arch sample and of every proxy (default 42, Samsung's)")
    p.add_argument("--proxies", default="", help="comma-separated (default: all registered)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: CPU cores)")
    p.add_argument("--out", type=Path, help="default out/eval-<space>-<dataset>-<N>-<seed>")
    p.add_argument("--device", default="cpu", help="torch device for the proxies")
    p.add_argument("--csv", type=Path,
                   help="accuracy_dev.csv (default: ../shared/data/nb201/ of the checkout)")
    p.add_argument("--anchors", type=Path, help="reference_correlations.csv "
                                                "(default: ../shared/anchors/ of the checkout)")
    p.add_argument("--naslib", type=Path,
                   help="naslib_zc_scores.csv (default: next to the accuracy CSV)")
    p.add_argument("--within-naslib", action="store_true",
                   help="sample only archs NASLib scored, so the agreement column has all n")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_proxies)

    h = what.add_parser(
        "hw-study", help="the survey's hardware-aware study on HW-NAS-Bench replay devices",
        description="For each device and latency budget (quantiles of its latencies), each "
                    "proxy picks its best feasible arch: report the accuracy gap to the best "
                    "feasible arch and Kendall tau inside the feasible set. Latencies come from "
                    "replay agents through a local server (or the table with --offline).")
    h.add_argument("--proxies-csv", type=Path,
                   help="per_arch.csv of `edgescore eval proxies` (default: the committed "
                        "1,000-arch CIFAR-10 run)")
    h.add_argument("--hw-csv", type=Path, help="hw_nas_bench_c10_dev.csv (default: "
                                               "../shared/data/nb201/ of the checkout)")
    h.add_argument("--devices", default="", help="comma-separated (default: all six)")
    h.add_argument("--quantiles", default="", help="budget quantiles in %% (default 25,50,75)")
    h.add_argument("--proxies", default="", help="comma-separated (default: every column)")
    h.add_argument("--ensemble", default="synflow,jacob_cov,naswot",
                   help="proxies rank-averaged into one more (empty: none)")
    h.add_argument("--archs", type=int, default=0, help="first N rows only (default all)")
    h.add_argument("--offline", action="store_true",
                   help="read latencies from the table instead of replay agents + server")
    h.add_argument("--out", type=Path, default=Path("out") / "hw-study")
    h.set_defaults(func=cmd_eval_hw_study)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgescore", description=__doc__)
    parser.add_argument("--server", default=os.environ.get("EDGESCORE_SERVER", DEFAULT_SERVER))
    parser.add_argument("--token", default=os.environ.get("EDGESCORE_TOKEN"))
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score one architecture")
    score.add_argument("--arch", required=True, help="NB201 string |op~0|+|op~0|op~1|+|...|")
    score.add_argument("--proxies", default="params,flops,synflow,naswot")
    score.add_argument("--device", default="", help="device classes, comma-separated")
    score.add_argument("--seed", type=int)
    score.add_argument("--warmup-runs", type=int)
    score.add_argument("--min-runs", type=int)
    score.add_argument("--min-seconds", type=float)
    score.add_argument("--max-seconds", type=float)
    score.add_argument("--threads", type=int)
    score.add_argument("--json", action="store_true", help="print the full result as JSON")
    score.set_defaults(func=cmd_score)
    sub.add_parser("proxies", help="list the proxies").set_defaults(func=cmd_proxies)
    sub.add_parser("spaces", help="list the search spaces").set_defaults(func=cmd_spaces)
    sub.add_parser("devices", help="list device classes").set_defaults(func=cmd_devices)
    sub.add_parser("demo", help="local server + agent, score a few NB201 archs").set_defaults(
        func=cmd_demo)
    _add_eval(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return ns.func(ns)
    except EdgescoreError as exc:
        print(f"error: {exc.code.name}: {exc.details}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
