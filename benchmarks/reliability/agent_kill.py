"""Agents killed -9 at random while they measure: real local-cpu agents (on the shared stack,
stopped afterwards), one ScoreStream of measurements; every submitted request is answered exactly
once, and a killed agent's job goes to another agent (a replacement is started after each kill)."""

from __future__ import annotations

import random
import signal
import threading

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack

OWN_STACK = False
# agents, measurements, seconds between kills, kills at most
SIZES = {"short": (2, 6, 2.0, 1), "full": (3, 60, 4.0, 15)}
DEVICE = "local-cpu"


def run(size: str, s: LocalStack) -> runner.Result:
    agents, measurements, every, most = SIZES[size]
    killed: set[int] = set()
    archs = runner.replay_archs(measurements, seed=3)
    first = len(s.agents)
    for _ in range(agents):
        s.start_agent(DEVICE)
    s.wait_for_agents({DEVICE: agents})
    result, tally, started = runner.begin(
        "agent_kill", f"{agents} agents, {measurements} measurements, "
                      f"a kill every {every:.0f} s", s)
    with runner.channel(s) as chan:
        done = threading.Event()
        killer = threading.Thread(target=_kill_at_random, args=(s, first, every, most, done,
                                                               killed))
        killer.start()
        ids = [f"m{i}" for i in range(measurements)]
        requests = (runner.score_request(arch, ["params"], [DEVICE], request_id=rid,
                                         settings=runner.QUICK_MEASUREMENT)
                    for rid, arch in zip(ids, archs))
        try:
            runner.read_stream(tally, runner.Stubs.of(chan).scoring.ScoreStream(
                requests, timeout=900, metadata=runner.AUTH), ids, result)
        finally:
            done.set()
            killer.join()
        runner.finish(result, s, tally, started, killed)
    for proc in s.agents[first:]:
        s.terminate(proc)
    del s.agents[first:]
    result.requests = measurements
    result.notes.append(f"{len(killed)} agents killed -9")
    return result


def _kill_at_random(s: LocalStack, first: int, every: float, most: int, done: threading.Event,
                    killed: set) -> None:
    """Kill a random live agent of this scenario's (the stack's agents from index `first`) every
    `every` seconds, `most` in all, and start a replacement."""
    rng = random.Random(14)
    while len(killed) < most and not done.wait(every):
        live = [p for p in s.agents[first:] if p.poll() is None]
        if not live:
            continue
        victim = rng.choice(live)
        killed.add(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        s.start_agent(DEVICE)
