"""Protocol extras around the timed runs: cooling down first, watching the clock during them.

Throttling rule (docs/measurement.md): a run is `throttled` when
  1. `vcgencmd get_throttled` reports a *current* condition (bits 0-3) before or after it, or
  2. during the timed runs the fastest CPU frequency policy ran below FREQ_TOLERANCE of its
     maximum (cpuinfo_max_freq) in any sample. The fastest policy is the one running the model
     (idle cores of a big.LITTLE board or a PC may park at low clocks and say nothing).
"""

from __future__ import annotations

import glob
import math
import os
import time
from typing import Callable

from edgescore.device_agent.thermal import cpu_temp_celsius, is_throttled
from edgescore.v1 import common_pb2

CPUFREQ_POLICY_GLOB = "/sys/devices/system/cpu/cpufreq/policy*"
FREQ_TOLERANCE = 0.9  # clock steps and sampling jitter: 10 % below max before we call it throttled
SAMPLE_EVERY_S = 0.2  # sysfs reads are ~10 µs each, done between runs, so this costs nothing


def _khz(path: str) -> float:
    try:
        with open(path) as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return 0.0


def clock_ratio(pattern: str = CPUFREQ_POLICY_GLOB) -> tuple[float, float, float]:
    """(cur MHz, max MHz, cur/max) of the policy running closest to its maximum; zeros if none."""
    best = (0.0, 0.0, 0.0)
    for policy in sorted(glob.glob(pattern)):
        cur = _khz(os.path.join(policy, "scaling_cur_freq"))
        top = _khz(os.path.join(policy, "cpuinfo_max_freq"))
        if cur > 0 and top > 0 and cur / top > best[2]:
            best = (cur / 1000.0, top / 1000.0, cur / top)
    return best


class ClockSampler:
    """Called between timed runs; samples the CPU clock at most every `every` seconds."""

    def __init__(self, pattern: str = CPUFREQ_POLICY_GLOB, every: float = SAMPLE_EVERY_S) -> None:
        self.pattern, self.every = pattern, every
        self.samples = 0
        self.min_ratio = math.inf
        self.min_mhz = 0.0
        self.max_mhz = 0.0
        self._next = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        cur, top, ratio = clock_ratio(self.pattern)
        if top <= 0:
            return
        self.samples += 1
        if ratio < self.min_ratio:
            self.min_ratio, self.min_mhz, self.max_mhz = ratio, cur, top

    def throttled(self) -> bool:
        return self.samples > 0 and self.min_ratio < FREQ_TOLERANCE


def wait_for_cooldown(
    trace: common_pb2.ThermalTrace,
    below_celsius: float,
    max_wait: float,
    poll: float = 2.0,
    should_stop: Callable[[], bool] | None = None,
    read_temp: Callable[[], float] = cpu_temp_celsius,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until the CPU is below `below_celsius`, at most `max_wait` s; record it in `trace`.

    Every reading is appended to trace.cooldown_temps_celsius. No readable sensor (NaN) or the
    cap reached leaves cooldown_reached false; the measurement then goes ahead (the trace says
    so) rather than failing a job on a board without sensors. should_stop() ends the wait early.
    """
    trace.cooldown_target_celsius = below_celsius
    start = time.monotonic()
    while True:
        temp = read_temp()
        if math.isnan(temp):
            break
        trace.cooldown_temps_celsius.append(round(temp, 2))
        if temp < below_celsius:
            trace.cooldown_reached = True
            break
        waited = time.monotonic() - start
        if waited >= max_wait or (should_stop is not None and should_stop()):
            break
        sleep(min(poll, max(0.0, max_wait - waited)))
    trace.cooldown_waited_seconds = time.monotonic() - start


def finish_trace(
    trace: common_pb2.ThermalTrace,
    sampler: ClockSampler,
    env_before: common_pb2.DeviceEnv,
    env_after: common_pb2.DeviceEnv,
) -> bool:
    """Fill the clock part of `trace` and its throttle reasons; return the throttled flag."""
    trace.freq_samples = sampler.samples
    trace.min_cpu_freq_mhz = sampler.min_mhz
    trace.max_cpu_freq_mhz = sampler.max_mhz
    for when, env in (("before", env_before), ("after", env_after)):
        if is_throttled(env.throttled):
            trace.throttle_reasons.append(f"vcgencmd {env.throttled} {when} the runs")
    if sampler.throttled():
        trace.throttle_reasons.append(
            f"cpufreq {sampler.min_mhz:.0f} MHz < {FREQ_TOLERANCE:.0%} of max "
            f"{sampler.max_mhz:.0f} MHz during the runs"
        )
    return len(trace.throttle_reasons) > 0
