"""Load: many clients, each on its own connection, sending Score calls one after another
(params and flops on the compute plane, latency from the replay agent)."""

from __future__ import annotations

import threading

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack

OWN_STACK = False
# clients, calls per client, distinct archs: repeats are answered from the store, the point is
# the front under concurrency (every distinct arch costs an export and a compute on 2 cores).
SIZES = {"short": (5, 10, 4), "full": (50, 100, 40)}


def run(size: str, s: LocalStack) -> runner.Result:
    clients, calls, distinct = SIZES[size]
    result, tally, started = runner.begin("load", f"{clients} clients x {calls} Score", s)
    archs = runner.replay_archs(distinct, seed=1)

    def client(index: int) -> None:
        with runner.channel(s) as chan:
            stub = runner.Stubs.of(chan).scoring
            for n in range(calls):
                request = runner.score_request(archs[(index * calls + n) % len(archs)],
                                               ["params", "flops"], [runner.REPLAY_BOARD])
                reply = runner.timed(tally, "Score", lambda r=request: stub.Score(
                    r, timeout=120, metadata=runner.AUTH))
                if reply is not None:
                    tally.result_items(reply)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runner.finish(result, s, tally, started)
    result.lost = clients * calls - sum(tally.codes.values())
    result.notes.append(f"{tally.codes['OK']} answered OK, {distinct} distinct archs")
    return result
