"""The timing loop every runner shares: warm-up, timed runs, stop rules, peak memory.

A runner only knows how to load its model and run it once; `time_model` owns the protocol, so
onnxruntime and LiteRT numbers are taken the same way and stay comparable.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from edgescore.device_agent.stats import summarize
from edgescore.v1 import common_pb2


class MeasurementAborted(RuntimeError):
    """Raised when should_stop() turns true mid-measurement (server cancel or job timeout)."""


class UnsupportedAccelerator(RuntimeError):
    """The job's execution provider or delegate is not available in this agent's runtime."""


def reset_peak_rss() -> None:
    """Reset VmHWM so the peak reported is this job's, not the agent's lifetime peak."""
    # Writing "5" to clear_refs resets VmHWM (Linux >= 4.0). It is a procfs control file, not a
    # file on disk; silently skipped where unsupported.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """Process peak resident set size: VmHWM, else getrusage (kB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return 0


def time_runs(
    run_once: Callable[[], object],
    eff: common_pb2.MeasurementSettings,
    should_stop: Callable[[], bool] | None = None,
    between_runs: Callable[[], None] | None = None,
    meter=None,
) -> list[float]:
    """Per-run latencies in ms of `run_once`, following the protocol in `eff` (defaults filled).

    warmup_runs untimed runs, then timed runs until at least min_runs runs *and* min_seconds have
    elapsed, stopping once max_seconds of timed runs are exceeded (never fewer than one timed
    run). should_stop() is polled before every run and raises MeasurementAborted; between_runs()
    (e.g. a clock sampler) is called outside the timed interval. `meter` (energy_meter.EnergyMeter),
    when given, is started right before the first timed run and stopped after the last with the
    number of runs: its energy covers the timed runs (and between_runs, which is brief).
    """
    stop = should_stop or (lambda: False)
    for _ in range(eff.warmup_runs):
        if stop():
            raise MeasurementAborted("stopped during warmup")
        run_once()

    samples: list[float] = []
    if meter is not None:
        meter.start()
    try:
        start = time.perf_counter()
        while True:
            if stop():
                raise MeasurementAborted(f"stopped after {len(samples)} timed runs")
            t_run = time.perf_counter()
            run_once()
            t_end = time.perf_counter()
            samples.append((t_end - t_run) * 1000.0)
            elapsed = t_end - start
            if elapsed >= eff.max_seconds:
                break
            if len(samples) >= eff.min_runs and elapsed >= eff.min_seconds:
                break
            if between_runs is not None:
                between_runs()
    except BaseException:
        if meter is not None:
            meter.abort()  # no energy for a run that did not finish; its sampler thread ends
        raise
    if meter is not None:
        meter.stop(len(samples))
    return samples


def finish_stats(samples: list[float], load_ms: float) -> common_pb2.LatencyStats:
    """LatencyStats of `samples` with the load time and this job's peak RSS filled in."""
    stats = summarize(samples)
    stats.load_ms = load_ms
    stats.peak_rss_bytes = peak_rss_bytes()
    return stats
