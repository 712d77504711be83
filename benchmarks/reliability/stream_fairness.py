"""A ScoreStream flood from one client while a second client probes with single Score calls:
every streamed item answered exactly once, and the probe's latency next to its idle latency."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

from benchmarks.reliability.runner import (
    AUTH,
    Result,
    Stubs,
    Tally,
    channel,
    finish,
    replay_archs,
    score_request,
    timed,
    tree_rss_mb,
)
from edgescore.client.launcher import LocalStack

OWN_STACK = False

SIZES = {"short": (40, 3), "full": (500, 20)}  # streamed items, probes (idle and under flood)
PROXIES = ["params", "flops"]


def run(size: str, s: LocalStack) -> Result:
    items, probes = SIZES[size]
    result, tally = Result("stream_fairness", f"{items}-item stream + {probes} probes"), Tally()
    archs = replay_archs(items + 2 * probes, seed=2)
    flood, idle_probes, busy_probes = (archs[:items], archs[items:items + probes],
                                       archs[items + probes:])
    with channel(s) as a_chan, channel(s) as b_chan:
        started = time.monotonic()
        result.rss_before_mb = tree_rss_mb(s.server.pid)  # type: ignore[union-attr]
        probe = Stubs.of(b_chan).scoring
        idle = [_probe(tally, probe, arch) for arch in idle_probes]
        seen: Counter[str] = Counter()

        def stream() -> None:
            requests = (score_request(arch, PROXIES, request_id=f"a{i}")
                        for i, arch in enumerate(flood))
            start = time.monotonic()
            try:
                for item in Stubs.of(a_chan).scoring.ScoreStream(requests, timeout=1200,
                                                                 metadata=AUTH):
                    seen[item.request_id] += 1
                    if item.HasField("error"):
                        tally.item(f"stream item {item.error.code}")
                    else:
                        tally.result_items(item.result)
            except Exception as exc:  # noqa: BLE001 - the stream's status is the figure
                tally.call("ScoreStream", getattr(exc, "code", lambda: "ERROR")().name,
                           time.monotonic() - start, str(exc))
                return
            tally.call("ScoreStream", "OK", time.monotonic() - start)

        flooder = threading.Thread(target=stream)
        flooder.start()
        time.sleep(1.0)  # the stream's window fills before the first probe
        busy = [_probe(tally, probe, arch) for arch in busy_probes if flooder.is_alive()]
        flooder.join()
        finish(result, s, tally, started)
    expected = {f"a{i}" for i in range(items)}
    result.lost = len(expected - set(seen))
    result.duplicated = sum(n - 1 for n in seen.values() if n > 1)
    result.notes.append(f"probe p50 idle {_p50(idle)} ms, under the flood {_p50(busy)} ms "
                        f"({len(busy)} probes while the stream ran)")
    return result


def _probe(tally: Tally, stub, arch: str) -> float:  # noqa: ANN001 - a generated stub
    start = time.monotonic()
    timed(tally, "Score probe", lambda: stub.Score(score_request(arch, PROXIES), timeout=300,
                                                              metadata=AUTH))
    return (time.monotonic() - start) * 1000


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"
