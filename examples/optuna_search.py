"""NSGA-II over NB201 with Optuna: synflow up, Raspberry Pi 4 latency down, in one command.

    python examples/optuna_search.py                 # starts a local server + replay agent
    python examples/optuna_search.py --server HOST:50051 --trials 200   # a server with raspi4

Without --server it starts edgescore-server and an agent replaying HW-NAS-Bench's Raspberry Pi 4
latencies (needs edgescore[server,agent,optuna] and ../shared/data); the search draws only the
archs that table has. It prints the Pareto front with each arch's true CIFAR-10 accuracy.
"""

import argparse
import contextlib
import csv
from pathlib import Path

import optuna

from edgescore.client import Client
from edgescore.client.launcher import LocalStack
from edgescore.client.search import SearchConfig
from edgescore.integrations.optuna import Objective, optimize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"
p = argparse.ArgumentParser()
p.add_argument("--server", help="a running server with a raspi4 agent (default: start one)")
p.add_argument("--trials", type=int, default=60, help="archs to evaluate")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--data", type=Path, default=DATA, help="folder of the NB201 tables")
args = p.parse_args()

hw_csv = args.data / "hw_nas_bench_c10_dev.csv"
accuracy = {r["arch"]: float(r["c10_test"]) for r in csv.DictReader(
    open(args.data / "accuracy_dev.csv", encoding="utf-8"))}
optuna.logging.set_verbosity(optuna.logging.ERROR)  # not a warning per rejected trial
with contextlib.ExitStack() as stack:
    server = args.server
    if server is None:
        local = stack.enter_context(LocalStack(agents={}))
        local.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(hw_csv),
                                           "--device", "raspi4"])
        local.wait_for_agents({"raspi4": 1})
        server = local.target
    client = stack.enter_context(Client(server))
    config = SearchConfig(space="nb201", proxy="synflow", device="raspi4", objective="pareto")
    objective = Objective(client, config, within=set(accuracy), limit=args.trials)
    study = optuna.create_study(directions=objective.directions,
                                sampler=optuna.samplers.NSGAIISampler(population_size=20,
                                                                      seed=args.seed))
    optimize(study, objective, n_trials=50 * args.trials)
print(f"{objective.evaluations} archs evaluated in {len(study.trials)} trials; Pareto front:")
for t in sorted(study.best_trials, key=lambda t: t.values[1]):
    arch = t.user_attrs["arch"]
    print(f"  synflow {t.values[0]:7.2f}  {t.values[1]:7.2f} ms  accuracy {accuracy[arch]:.2f}"
          f"  {arch}")
