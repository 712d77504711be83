"""The server killed -9 during `edgescore batch` and restarted on the same port: the batch
(a real CLI process) goes on or is rerun, and its output holds every input row exactly once."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack

OWN_STACK = True
SIZES = {"short": (8, 1), "full": (150, 3)}  # specs, server kills
RERUNS = 3  # batch runs after the first, until one exits 0


def run(size: str, shared: LocalStack | None = None) -> runner.Result:
    specs, kills = SIZES[size]
    with runner.stack(replay_agents=1) as s:
        result, tally, started = runner.begin(
            "server_kill_batch", f"{specs} specs, {kills} server kill(s)", s)
        specs_csv, out = s.log_dir / "specs.csv", s.log_dir / "out.csv"
        with specs_csv.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "arch"])
            archs = runner.replay_archs(specs, seed=4)
            writer.writerows([f"r{i}", arch] for i, arch in enumerate(archs))
        batch = [sys.executable, "-m", "edgescore.cli", "--server", s.target, "batch",
                 str(specs_csv), "--out", str(out), "--proxies", "params,flops",
                 "--device", runner.REPLAY_BOARD, "--no-progress", "--max-in-flight", "4"]
        first = subprocess.Popen(batch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed_trees: list[int] = []
        runs = [_with_kills(s, first, out, specs, kills, tally, killed_trees)]
        while runs[-1] != 0 and len(runs) <= RERUNS:
            runs.append(subprocess.run(batch, capture_output=True, timeout=600).returncode)
        result.crashes = runner.crashes(s)
        tally.codes["orphans"] = len(_outliving(killed_trees))
        if s.server is not None and s.server.poll() is None:
            result.rss_after_mb = runner.tree_rss_mb(s.server.pid)
        rows = _rows(out)
    ids = Counter(r["id"] for r in rows)
    result.requests = specs
    result.lost = sum(1 for i in range(specs) if f"r{i}" not in ids)
    result.duplicated = sum(n - 1 for n in ids.values() if n > 1)
    failed = [r["id"] for r in rows if r.get("error")]
    result.errors = {"rows with an error": len(failed)} if failed else {}
    if runs[-1] != 0:
        result.findings.append(f"batch still exits {runs[-1]} after {len(runs)} runs "
                               f"(rows with errors: {failed[:5]})")
    if tally.codes["orphans"]:
        result.findings.append(f"{tally.codes['orphans']} process(es) of the killed server "
                               "outlived it")
    result.notes.append(f"batch exit codes {runs}; server killed -9 {tally.codes['kill']} time(s)")
    result.seconds = round(time.monotonic() - started, 1)
    return runner.judge(result)


def _with_kills(s: LocalStack, batch: subprocess.Popen, out: Path, specs: int, kills: int,
                tally: runner.Tally, killed_trees: list[int]) -> int:
    """Kill the server -9 each time another share of the rows is written, restart it on the same
    port, and return the batch's exit code; `killed_trees` gets the killed servers' processes."""
    for k in range(1, kills + 1):
        goal = specs * k // (kills + 2)
        while len(_rows(out)) < goal and batch.poll() is None:
            time.sleep(0.2)
        if batch.poll() is not None:
            break
        assert s.server is not None
        workers = runner.descendants(s.server.pid)
        s.server.send_signal(signal.SIGKILL)
        s.server.wait()
        tally.codes["kill"] += 1
        killed_trees.extend(workers)
        s.start_server(port=s.port)
    try:
        return batch.wait(timeout=600)
    except subprocess.TimeoutExpired:
        batch.kill()
        return batch.wait()


def _outliving(pids: list[int], grace: float = 15.0) -> list[int]:
    """Those of `pids` still running after `grace` seconds: a killed server's compute workers
    notice their parent's death within a few seconds and exit."""
    deadline = time.monotonic() + grace
    while True:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def _rows(out: Path) -> list[dict[str, str]]:
    if not out.exists():
        return []
    with out.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("id")]
