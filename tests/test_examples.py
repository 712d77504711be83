"""The examples run as written: the 30-line search loop against a real stack, and the figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

from edgescore.client.launcher import LocalStack

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HW_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"


def test_search_loop_example_finds_a_feasible_cell() -> None:
    with LocalStack(agents={}) as stack:
        # Real Raspberry Pi 4 latencies (HW-NAS-Bench's dev split); a cell the table lacks
        # comes back NOT_FOUND for the device, and the loop passes over it.
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(HW_CSV),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        done = subprocess.run([sys.executable, str(EXAMPLES / "search_loop.py"), "--server",
                               stack.target, "--budget", "30"], capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, done.stderr
    assert "new best synflow" in done.stdout and "best: (" in done.stdout


def test_optuna_example_runs_in_one_command() -> None:
    """Its own server and HW-NAS-Bench replay agent, an NSGA-II study, the front printed."""
    done = subprocess.run([sys.executable, str(EXAMPLES / "optuna_search.py"), "--trials", "4"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "4 archs evaluated in" in done.stdout and "Pareto front:" in done.stdout
    front = [line for line in done.stdout.splitlines() if line.startswith("  synflow")]
    assert front and all(" ms  accuracy " in line for line in front)


def test_reproduce_figure_example(tmp_path: Path) -> None:
    out = tmp_path / "fig.png"
    done = subprocess.run([sys.executable, str(EXAMPLES / "reproduce_figure.py"), "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "synflow: Spearman rho 0.739 over 982 archs (published 0.737)" in done.stdout
    assert out.stat().st_size > 10_000
