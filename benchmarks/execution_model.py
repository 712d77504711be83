"""The execution model, measured through real servers (docs/performance.md has the figures).

    throughput  requests/s of new NB201 archs (params, flops, synflow, naswot), one client with
                64 in flight: the server before the compute plane (--before CHECKOUT), this one
                with one compute worker, and with its default (one per core)
    fairness    client B's one-item Score latency while client A streams 20,000 items, as a
                ratio to B's idle latency (p50, p99), on this server (and --before's)
    ray         archs/s on a local Ray cluster of 1 and 2 worker nodes (1 CPU each), and the
                per-item cost of a Ray task against a local worker

    .venv/bin/python benchmarks/execution_model.py throughput --before /tmp/edgescore-before
    .venv/bin/python benchmarks/execution_model.py fairness --before /tmp/edgescore-before
    .venv/bin/python benchmarks/execution_model.py ray

`--before` is a copy of the commit to compare with (`mkdir /tmp/edgescore-before && git archive
0a66e53 | tar -x -C /tmp/edgescore-before`): its server runs from that code with this
environment's packages. Clients and servers share this machine's cores, so every rate is a floor.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgescore.client import NO_RETRY, EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.client.requests import score_request
from edgescore.grammar.nb201 import Nb201Grammar
from edgescore.server.proxies.base import SettingsOverride

PROXIES = ["params", "flops", "synflow", "naswot"]
RAY = str(Path(sys.executable).with_name("ray"))


def archs(n: int, seed: int) -> list[str]:
    """`n` NB201 cells, distinct while n <= 15,625 (the space's size), then repeating."""
    rng, sampler = random.Random(seed), Nb201Grammar()
    found: dict[str, None] = {}
    while len(found) < min(n, 15_625):
        found.setdefault(sampler.sample(rng))
    cells = list(found)
    return [cells[i % len(cells)] for i in range(n)]


@contextlib.contextmanager
def before_code(checkout: str) -> Iterator[None]:
    """Servers started inside run `checkout`'s edgescore: an overlay package on PYTHONPATH, and
    the overlay as their working directory (`python -m` looks there first). The overlay lives
    as long as this process: the servers keep running in it."""
    overlay = tempfile.mkdtemp(prefix="edgescore-before-")
    atexit.register(shutil.rmtree, overlay, True)
    root = Path(checkout).resolve()
    package = Path(overlay) / "edgescore"
    package.mkdir()
    for item in (root / "edgescore").iterdir():
        (package / item.name).symlink_to(item)
    for sub in ("server", "device_agent", "client"):
        (package / sub).symlink_to(root / sub)
    old, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = overlay
    os.chdir(overlay)
    try:
        yield
    finally:
        os.chdir(cwd)
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def stack(args: list[str], before: str = "") -> contextlib.AbstractContextManager:
    if not before:
        return LocalStack(agents={}, server_args=args)

    @contextlib.contextmanager
    def started() -> Iterator[LocalStack]:
        s = LocalStack(agents={}, server_args=args)
        with before_code(before):
            s.start_server()
        try:
            yield s
        finally:
            s.stop()

    return started()


def rate(target: LocalStack, cells: list[str], in_flight: int) -> float:
    with target.client(timeout=3600) as client:
        client.score(archs(1, 999)[0], PROXIES)  # workers up, data loaded
        start = time.perf_counter()
        items = list(client.score_many(cells, PROXIES, max_in_flight=in_flight))
        seconds = time.perf_counter() - start
    failed = [i.error for i in items if not i.ok]
    assert not failed, failed[:3]
    return len(items) / seconds


def _compute_here(cell: str) -> None:
    from edgescore.server.compute.units import ArchRef, ProxyUnit, execute, prepare_process

    prepare_process()
    unit = ProxyUnit(ArchRef("nb201", cell), tuple((p, SettingsOverride()) for p in PROXIES))
    execute(unit, lambda outcome: None, lambda: None)


def machine_scaling(cells: list[str], processes: int) -> float:
    """Archs/s of the same work with no server: plain processes, one torch thread each."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_compute_here, cells[:processes])  # imports and data loaded
        start = time.perf_counter()
        pool.map(_compute_here, cells, chunksize=1)
        return len(cells) / (time.perf_counter() - start)


def throughput(ns: argparse.Namespace) -> None:
    # The same cells everywhere (costs differ a lot between cells); each server has a fresh
    # store, so every one of them computes every cell.
    cores, cells = os.cpu_count() or 1, archs(ns.archs, 1)
    sample = cells[:60]
    bare = [machine_scaling(sample, 1), machine_scaling(sample, cores)]
    rows = []
    if ns.before:
        with stack([], ns.before) as s:
            rows.append(("before (thread pool, --workers 8)", rate(s, cells, ns.in_flight)))
    with stack(["--compute-workers", "1"]) as s:
        one = rate(s, cells, ns.in_flight)
        rows.append(("after, 1 compute worker", one))
    with stack([]) as s:
        rows.append((f"after, {cores} compute workers (default)", rate(s, cells, ns.in_flight)))
    print(f"{ns.archs} new NB201 archs, {','.join(PROXIES)}, {ns.in_flight} in flight, "
          f"{cores} cores")
    for name, value in rows:
        print(f"  {name:<40} {value:6.2f} req/s")
    after = rows[-1][1]
    print(f"  after / (cores x one-worker rate) = {after / (cores * one):.2f} (goal >= 0.90)")
    print(f"  the same work in bare processes, no server: 1 process {bare[0]:.2f} archs/s, "
          f"{cores} processes {bare[1]:.2f} archs/s: the machine itself scales "
          f"{bare[1] / (cores * bare[0]):.2f} of linear")
    if ns.before:
        print(f"  after / before = {after / rows[0][1]:.2f}")


def probe_latencies(target: LocalStack, cells: list[str], timeout: float) -> list[float]:
    """B: one one-item ScoreStream (the issue's probe) per cell, one after another, recomputed
    (no_cache), seconds each; inf where it timed out."""
    out = []
    with target.client(timeout=timeout, retry=NO_RETRY) as client:
        for cell in cells:
            start = time.perf_counter()
            try:
                items = list(client.score_stream(iter([score_request(cell, ["synflow"],
                                                                     no_cache=True)])))
                assert items and items[0].WhichOneof("outcome") == "result", items
                out.append(time.perf_counter() - start)
            except EdgescoreError:
                out.append(float("inf"))
    return out


def fairness_point(target: LocalStack, ns: argparse.Namespace, seed: int, probes: int
                   ) -> tuple:
    """B's latencies on the idle server and during A's flood, on the same cells (cells cost
    differently), and how many items A got meanwhile."""
    cells = archs(probes, seed)
    probe_latencies(target, cells[:3], 60)  # workers up, data loaded
    idle = probe_latencies(target, cells, 60)
    flood = iter(score_request(cell, ["synflow"]) for cell in archs(ns.stream_items, seed + 1))
    a = target.client(timeout=None)
    stream = a.score_stream(flood)
    received = 0

    def drain() -> None:
        nonlocal received
        with contextlib.suppress(EdgescoreError):
            for _ in stream:
                received += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    time.sleep(5.0)  # the flood is under way
    busy = probe_latencies(target, cells, ns.probe_timeout)
    a.close()
    reader.join(30)
    return idle, busy, received


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fairness(ns: argparse.Namespace) -> None:
    runs = []
    if ns.before:
        with stack([], ns.before) as s:
            runs.append(("before", fairness_point(s, ns, 10, ns.before_probes)))
    with stack([]) as s:
        runs.append(("after", fairness_point(s, ns, 20, ns.probes)))
    print(f"client B: one-item ScoreStream (synflow, recomputed) while client A streams "
          f"{ns.stream_items} items (synflow), {os.cpu_count()} cores")
    for name, (idle, busy, received) in runs:
        ratios = [b / i for b, i in zip(busy, idle)]  # per cell: busy over idle
        timeouts = sum(1 for b in busy if b == float("inf"))
        p = {q: (quantile(idle, q), quantile(busy, q)) for q in (.5, .99)}
        print(f"  {name}: {len(busy)} probes, {timeouts} past {ns.probe_timeout:g} s; A got "
              f"{received} items meanwhile")
        print(f"    idle p50 {p[.5][0] * 1000:.1f} ms, p99 {p[.99][0] * 1000:.1f} ms; busy p50 "
              f"{p[.5][1] * 1000:.1f} ms, p99 {p[.99][1] * 1000:.1f} ms")
        print(f"    busy / idle: p99 / p99 {p[.99][1] / p[.99][0]:.2f} (goal <= 3), p50 / p50 "
              f"{p[.5][1] / p[.5][0]:.2f}, p99 / p50 {p[.99][1] / p[.5][0]:.2f}; per cell: p50 "
              f"{quantile(ratios, .5):.2f}, p99 {quantile(ratios, .99):.2f}")


@contextlib.contextmanager
def ray_cluster(workers: int) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="edgescore-ray-")
    port = 20000 + random.randrange(20000)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                    str(port), "--num-cpus", "0", "--include-dashboard", "false",
                    "--disable-usage-stats", "--temp-dir", tmp], check=True, **quiet)
    try:
        for _ in range(workers):
            subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address",
                            "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"],
                           check=True, **quiet)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], **quiet)


def per_item(target: LocalStack, n: int) -> float:
    """Seconds per request of the cheapest unit (params, recomputed), one at a time."""
    with target.client(timeout=600) as client:
        client.score(archs(1, 5)[0], ["params"], no_cache=True)
        cells = archs(n, 6)
        start = time.perf_counter()
        for cell in cells:
            client.score(cell, ["params"], no_cache=True)
        return (time.perf_counter() - start) / n


def ray(ns: argparse.Namespace) -> None:
    cells, rows = archs(ns.archs, 30), []  # the same cells everywhere; every store is fresh
    for workers in (1, 2):
        with ray_cluster(workers) as address, \
                stack(["--compute", "ray", "--ray-address", address]) as s:
            rows.append((workers, rate(s, cells, ns.in_flight),
                         per_item(s, 50) if workers == 1 else None))
    with stack(["--compute-workers", "1"]) as s:
        local = (rate(s, cells, ns.in_flight), per_item(s, 50))
    print(f"{ns.archs} new NB201 archs, {','.join(PROXIES)}, {ns.in_flight} in flight, "
          f"{os.cpu_count()} cores; worker nodes of 1 CPU each on this machine")
    for workers, value, _ in rows:
        print(f"  Ray, {workers} worker node(s): {value:6.2f} archs/s")
    print(f"  local pool, 1 worker:   {local[0]:6.2f} archs/s")
    print(f"  2 nodes / 1 node = {rows[1][1] / rows[0][1]:.2f}; Ray 1 node / local 1 worker = "
          f"{rows[0][1] / local[0]:.2f}")
    print(f"  per request, params only, one at a time: Ray {rows[0][2] * 1000:.1f} ms, local "
          f"pool {local[1] * 1000:.1f} ms: Ray adds {(rows[0][2] - local[1]) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("throughput", "fairness", "ray"))
    parser.add_argument("--before", default="", help="checkout of the commit to compare with")
    parser.add_argument("--archs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--stream-items", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--before-probes", type=int, default=5,
                        help="probes of the --before server (each may wait out the timeout)")
    parser.add_argument("--probe-timeout", type=float, default=60.0)
    ns = parser.parse_args()
    {"throughput": throughput, "fairness": fairness, "ray": ray}[ns.what](ns)


if __name__ == "__main__":
    main()
