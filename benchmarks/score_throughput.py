"""Score requests per second through a real server (LocalStack subprocess) and the SDK.

Three passes over the same `--archs` distinct NB201 cells with the cheap `params` proxy, through
`Client.score_many` with `--in-flight` requests outstanding: (1) new archs (parse, size caps,
network build, proxy, store write), (2) the same archs again (answered from the store: CACHED),
(3) the same archs with `no_cache` (recomputed, the store bypassed). Prints each pass's rate and
the cached/new ratio. Client and server share this machine's cores, so the figures are a floor.

    .venv/bin/python benchmarks/score_throughput.py --archs 300 --in-flight 8
"""

from __future__ import annotations

import argparse
import os
import random
import time

from edgescore.client.launcher import LocalStack
from edgescore.grammar.nb201 import Nb201Grammar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    rng, sampler = random.Random(0), Nb201Grammar()
    archs = sorted({sampler.sample(rng) for _ in range(args.archs * 3)})[:args.archs]
    with LocalStack(agents={}) as stack, stack.client(timeout=600) as client:
        rates = {}
        for name, options in (("new", {}), ("cached", {}), ("no_cache", {"no_cache": True})):
            start = time.perf_counter()
            items = list(client.score_many(archs, ["params"], max_in_flight=args.in_flight,
                                           **options))
            seconds = time.perf_counter() - start
            assert all(item.ok for item in items), next(i.error for i in items if not i.ok)
            rates[name] = len(items) / seconds
            print(f"{name:>9}: {len(items)} requests in {seconds:.2f} s = "
                  f"{rates[name]:.1f} req/s", flush=True)
    print(f"cached / new = {rates['cached'] / rates['new']:.2f} "
          f"(cores: {os.cpu_count()}, in flight: {args.in_flight})")


if __name__ == "__main__":
    main()
