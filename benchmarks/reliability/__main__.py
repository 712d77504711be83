"""`python -m benchmarks.reliability [--short] [--only SCENARIO ...] [--out DIR]`

Runs the scenarios against real servers and agents on loopback, prints the report and writes it
(markdown and JSON) to --out. Exits 1 when a scenario has a finding. The scenarios that kill
nothing share one stack (tokens on, a replay agent); the others start their own."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks.reliability.report import markdown, write
from benchmarks.reliability.runner import Result, shared_stack

SCENARIOS = ["load", "stream_fairness", "malformed", "onnx_bombs", "absurd_settings", "tokens",
             "agent_kill", "server_kill_batch"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--short", action="store_true", help="seconds per scenario (make test)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--out", type=Path, default=Path("reliability-report"))
    args = parser.parse_args(argv)
    size = "short" if args.short else "full"
    modules = [importlib.import_module(f"benchmarks.reliability.{n}") for n in SCENARIOS
               if n in args.only]
    results: list[Result] = []
    with contextlib.ExitStack() as stacks:
        shared = None
        for module in modules:
            name = module.__name__.rsplit(".", 1)[1]
            print(f"[{time.strftime('%H:%M:%S')}] {name} ({size})", file=sys.stderr, flush=True)
            try:
                if shared is None and not module.OWN_STACK:
                    shared = stacks.enter_context(shared_stack())
                results.append(module.run(size, shared))
            except Exception:  # noqa: BLE001 - a scenario that breaks is a finding, not the end
                results.append(Result(name, size, findings=[
                    "the scenario itself failed: " + traceback.format_exc(limit=3)[-600:]]))
    command = "python -m benchmarks.reliability " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(markdown(results, command, date))
    write(results, args.out, command, date)
    return 1 if any(r.findings for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
