"""A search loop in 30 lines: random NB201 cells, best synflow under 20 ms on a Raspberry Pi 4.

    python examples/search_loop.py --server localhost:50051 --device raspi4 --budget 200
"""

import argparse
import random

from edgescore.client import Client
from edgescore.client.search_spaces import sampler_for
from edgescore.v1 import common_pb2

p = argparse.ArgumentParser()
p.add_argument("--server", default="localhost:50051")
p.add_argument("--device", default="raspi4")
p.add_argument("--latency-ms", type=float, default=20.0)
p.add_argument("--budget", type=int, default=200)
args = p.parse_args()

rng, sampler = random.Random(0), sampler_for("nb201")
candidates = (sampler.sample(rng) for _ in range(args.budget))
budget = common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
    proxy="synflow", latency_budget_ms={args.device: args.latency_ms}))
best = None
with Client(args.server) as client:
    for item in client.score_many(candidates, ["synflow"], [args.device], objective=budget,
                                  allow_predicted=True, max_in_flight=8):
        r = item.result
        if item.ok and r.objective.feasible and (best is None or r.objective.value > best[0]):
            best = (r.objective.value, r.canonical_arch, r.latencies[args.device].median_ms)
            print(f"new best synflow {best[0]:.2f} at {best[2]:.2f} ms: {best[1]}")
print("best:", best)
