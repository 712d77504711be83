"""Latency summary statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgescore.v1 import common_pb2


def summarize(samples_ms: Sequence[float]) -> common_pb2.LatencyStats:
    """Summarise per-run latencies (milliseconds) into a LatencyStats.

    Percentiles use linear interpolation (numpy's default method). std_ms is the *sample* standard
    deviation (ddof=1) when n > 1 and 0 for a single sample, since the runs are a sample of the
    board's latency distribution. An empty input gives n = 0 and all-zero fields. load_ms and
    peak_rss_bytes are left for the caller.
    """
    values = np.asarray(list(samples_ms), dtype=np.float64)
    out = common_pb2.LatencyStats(n=int(values.size))
    if values.size == 0:
        return out
    median, p90, p99 = np.percentile(values, [50.0, 90.0, 99.0])
    out.mean_ms = float(values.mean())
    out.median_ms = float(median)
    out.p90_ms = float(p90)
    out.p99_ms = float(p99)
    out.std_ms = float(values.std(ddof=1)) if values.size > 1 else 0.0
    out.min_ms = float(values.min())
    out.max_ms = float(values.max())
    out.samples_ms.extend(float(v) for v in values)
    return out
