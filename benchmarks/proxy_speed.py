"""Proxy cost against the physical floor: one forward+backward of the same network.

On K NB201 archs (a seeded draw of non-degenerate cells) at batch 64, times per arch
  - each registered proxy alone (one `engine.compute_proxies` call with only that proxy),
  - the full suite in one `compute_proxies` call (what a Score request with every proxy costs,
    including whatever passes the engine shares between proxies),
  - one plain forward + backward of the network with cross-entropy on a CIFAR-10 batch of 64
    (the floor: no gradient-based proxy can cost less than one such pass),
and prints a table and the ratio full suite / floor (target <= 8). Proxies are whatever the
registry finds at run time, so the benchmark follows the suite as it grows.

    .venv/bin/python benchmarks/proxy_speed.py --archs 3     # server-side tooling: needs torch
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from edgescore.grammar.nb201 import NUM_NODES, OPS
from edgescore.server.proxies import data, engine, registry
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.spaces.nb201 import SPACE

TARGET_RATIO = 8.0


def random_archs(k: int, seed: int) -> list[ParsedArch]:
    """K distinct cells whose output depends on the input (a degenerate cell makes gradient
    proxies fail fast, which would flatter the timings)."""
    rng = random.Random(seed)
    out: dict[str, ParsedArch] = {}
    while len(out) < k:
        spec = "+".join("|" + "|".join(f"{rng.choice(OPS)}~{j}" for j in range(i)) + "|"
                        for i in range(1, NUM_NODES))
        arch = SPACE.parse(spec)
        if "degenerate_cell" not in arch.flags:
            out[arch.canonical] = arch
    return list(out.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return time.perf_counter() - start, result


def floor_seconds(arch: ParsedArch, batch: int, seed: int, device: torch.device,
                  repeats: int = 3) -> float:
    """Median time of one forward + CE loss + backward on a fresh network at `batch`."""
    torch.manual_seed(seed)
    network = SPACE.build(arch).to(device).train()
    made = data.calibration_batch("cifar10", batch, seed, arch.input_shape, arch.num_classes)
    x, y = made.x.to(device), made.y.to(device)

    def step() -> None:
        network.zero_grad(set_to_none=True)
        F.cross_entropy(network(x), y).backward()

    step()  # warm-up: first-call allocations are not the floor
    return statistics.median(timed(step, device)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    parser.add_argument("--proxies", default="", help="comma-separated (default: all registered)")
    ns = parser.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    device = torch.device(ns.device)
    names = [p for p in ns.proxies.split(",") if p] or [p.name for p in registry.all_proxies()]
    override = SettingsOverride(batch_size=ns.batch, seed=ns.seed)
    calls = [(name, override) for name in names]
    archs = random_archs(ns.archs, ns.seed)
    print(f"{len(names)} proxies on {len(archs)} NB201 archs, batch {ns.batch}, {ns.device}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")

    # Warm-up: the CIFAR-10 sample load and first-pass allocations, not counted anywhere. (Not a
    # full suite run: that would cost as much as one more arch.)
    data.cifar10_sample()
    floor_seconds(archs[0], ns.batch, ns.seed, device, repeats=1)

    alone: dict[str, list[float]] = {n: [] for n in names}
    in_suite: dict[str, list[float]] = {n: [] for n in names}
    failed: dict[str, int] = dict.fromkeys(names, 0)
    suite: list[float] = []
    floor: list[float] = []
    for i, arch in enumerate(archs, 1):
        for name in names:
            seconds, _ = timed(partial(engine.compute_proxies, SPACE, arch, [(name, override)],
                                       device=ns.device), device)
            alone[name].append(seconds)
        seconds, outcomes = timed(
            partial(engine.compute_proxies, SPACE, arch, calls, device=ns.device), device)
        suite.append(seconds)
        for outcome in outcomes:
            in_suite[outcome.name].append(outcome.seconds)
            failed[outcome.name] += outcome.error is not None
        floor.append(floor_seconds(arch, ns.batch, ns.seed, device))
        print(f"[{i}/{len(archs)}] {arch.canonical}: suite {suite[-1]:.3f} s, "
              f"floor {floor[-1]:.3f} s", flush=True)

    def over_floor(seconds: list[float]) -> float:
        # Per-arch ratios, each against the floor timed right after it, then their mean: a
        # machine whose load drifts during the run skews seconds, much less their ratios.
        return statistics.fmean(s / f for s, f in zip(seconds, floor))

    rows = [["proxy", "alone s/arch", "× floor", "in suite s/arch", "failed"]]
    for name in sorted(names, key=lambda n: -statistics.fmean(alone[n])):
        rows.append([name, f"{statistics.fmean(alone[name]):.4f}",
                     f"{over_floor(alone[name]):.2f}",
                     f"{statistics.fmean(in_suite[name]):.4f}", f"{failed[name]}/{len(archs)}"])
    alone_total = [sum(alone[n][i] for n in names) for i in range(len(archs))]
    rows.append(["sum of proxies alone", f"{statistics.fmean(alone_total):.4f}",
                 f"{over_floor(alone_total):.2f}", "", ""])
    rows.append(["full suite, one call", f"{statistics.fmean(suite):.4f}",
                 f"{over_floor(suite):.2f}", "", ""])
    rows.append(["floor: fwd+bwd (CE)", f"{statistics.fmean(floor):.4f}", "1.00", "", ""])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    print()
    for j, row in enumerate(rows):
        print("  ".join(v.ljust(w) if c == 0 else v.rjust(w)
                        for c, (v, w) in enumerate(zip(row, widths))))
        if j == 0 or j == len(rows) - 4:
            print("  ".join("-" * w for w in widths))
    ratio = over_floor(suite)
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"\nfull suite / floor = {ratio:.2f} ({verdict} the target of {TARGET_RATIO:g})")


if __name__ == "__main__":
    main()
