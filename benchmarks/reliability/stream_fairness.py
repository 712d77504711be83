"""A ScoreStream flood from one client while a second client probes with single Score calls:
every streamed item answered exactly once, and the probe's latency next to its idle latency."""

from __future__ import annotations

import statistics
import threading
import time

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack

OWN_STACK = False

SIZES = {"short": (40, 3), "full": (500, 20)}  # streamed items, probes (idle and under flood)
PROXIES = ["params", "flops"]


def run(size: str, s: LocalStack) -> runner.Result:
    items, probes = SIZES[size]
    result, tally, started = runner.begin(
        "stream_fairness", f"{items}-item stream + {probes} probes", s)
    archs = runner.replay_archs(items + 2 * probes, seed=2)
    flood, idle_probes, busy_probes = (archs[:items], archs[items:items + probes],
                                       archs[items + probes:])
    with runner.channel(s) as a_chan, runner.channel(s) as b_chan:
        probe = runner.Stubs.of(b_chan).scoring
        idle = [_probe(tally, probe, arch) for arch in idle_probes]
        ids = [f"a{i}" for i in range(items)]

        def stream() -> None:
            requests = (runner.score_request(arch, PROXIES, request_id=rid)
                        for rid, arch in zip(ids, flood))
            runner.read_stream(tally, runner.Stubs.of(a_chan).scoring.ScoreStream(
                requests, timeout=1200, metadata=runner.AUTH), ids, result)

        flooder = threading.Thread(target=stream)
        flooder.start()
        time.sleep(1.0)  # the stream's window fills before the first probe
        busy = [_probe(tally, probe, arch) for arch in busy_probes if flooder.is_alive()]
        flooder.join()
        runner.finish(result, s, tally, started)
    result.notes.append(f"probe p50 idle {_p50(idle)} ms, under the flood {_p50(busy)} ms "
                        f"({len(busy)} probes while the stream ran)")
    return result


def _probe(tally: runner.Tally, stub, arch: str) -> float:  # noqa: ANN001 - a generated stub
    start = time.monotonic()
    request = runner.score_request(arch, PROXIES)
    runner.timed(tally, "Score probe",
                 lambda: stub.Score(request, timeout=300, metadata=runner.AUTH))
    return (time.monotonic() - start) * 1000


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"
