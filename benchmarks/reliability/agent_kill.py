"""Agents killed -9 at random while they measure: real local-cpu agents (on the shared stack,
stopped afterwards), one ScoreStream of measurements; every submitted request is answered exactly
once, and a killed agent's job goes to another agent (a replacement is started after each kill)."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter

from benchmarks.reliability.runner import (
    AUTH,
    QUICK_MEASUREMENT,
    Result,
    Stubs,
    Tally,
    channel,
    finish,
    replay_archs,
    score_request,
    tree_rss_mb,
)
from edgescore.client.launcher import LocalStack

OWN_STACK = False
# agents, measurements, seconds between kills, kills at most
SIZES = {"short": (2, 6, 2.0, 1), "full": (3, 60, 4.0, 15)}
DEVICE = "local-cpu"


def run(size: str, s: LocalStack) -> Result:
    agents, measurements, every, most = SIZES[size]
    result = Result("agent_kill", f"{agents} agents, {measurements} measurements, "
                                  f"a kill every {every:.0f} s")
    tally, seen, killed = Tally(), Counter(), set()
    archs = replay_archs(measurements, seed=3)
    first = len(s.agents)
    for _ in range(agents):
        s.start_agent(DEVICE)
    s.wait_for_agents({DEVICE: agents})
    with channel(s) as chan:
        started = time.monotonic()
        result.rss_before_mb = tree_rss_mb(s.server.pid)  # type: ignore[union-attr]
        done = threading.Event()
        killer = threading.Thread(target=_kill_at_random, args=(s, first, every, most, done,
                                                               killed))
        killer.start()
        requests = (score_request(arch, ["params"], [DEVICE], request_id=f"m{i}",
                                  settings=QUICK_MEASUREMENT) for i, arch in enumerate(archs))
        start = time.monotonic()
        try:
            for item in Stubs.of(chan).scoring.ScoreStream(requests, timeout=900,
                                                           metadata=AUTH):
                seen[item.request_id] += 1
                if item.HasField("error"):
                    tally.item(f"stream item {item.error.code}")
                else:
                    tally.result_items(item.result)
            tally.call("ScoreStream", "OK", time.monotonic() - start)
        except Exception as exc:  # noqa: BLE001 - the stream's status is the figure
            code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
            tally.call("ScoreStream", code, time.monotonic() - start, str(exc))
        finally:
            done.set()
            killer.join()
        finish(result, s, tally, started, killed)
    for proc in s.agents[first:]:
        s.terminate(proc)
    del s.agents[first:]
    expected = {f"m{i}" for i in range(measurements)}
    result.lost = len(expected - set(seen))
    result.duplicated = sum(n - 1 for n in seen.values() if n > 1)
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
