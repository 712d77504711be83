"""How long one job may take before the agent's watchdog stops it.

A job's settings bound its timed runs (`max_seconds`), but not model loading, warm-up or a single
run: one `session.run` of a graph with a huge `Loop` never returns to the timing loop, and
`warmup_runs = 2**32 - 1` is never over. So every job gets a wall-clock limit, the smallest of

1. the job's own `timeout_seconds` (the server stops waiting then anyway), when set;
2. its measurement budget: the cooldown wait it asked for (up to --cooldown-max-wait), a load
   allowance, RUN_FACTOR x max_seconds and a margin;
3. the agent's absolute cap, --max-job-seconds (default DEFAULT_MAX_JOB_SECONDS).

docs/measurement.md explains the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgescore.device_agent.protocol import effective_settings
from edgescore.v1 import agent_pb2

# Parsing and optimising a large graph (ONNX graph optimisations, the XNNPACK delegate) takes
# tens of seconds on a Raspberry Pi for a model near the server's 200 MiB cap.
LOAD_ALLOWANCE_S = 60.0
# One max_seconds for the timed runs; warm-up is counted in runs, not seconds, so it gets about
# as much again, and the last timed run may overshoot max_seconds by one run's latency.
RUN_FACTOR = 3.0
MARGIN_S = 10.0
DEFAULT_MAX_JOB_SECONDS = 900.0


@dataclass(frozen=True)
class JobLimit:
    seconds: float
    reason: str  # which limit it is, e.g. "the agent's cap (--max-job-seconds)"

    def describe(self) -> str:
        return f"job exceeded {self.seconds:g} s, {self.reason}"


def measurement_budget(job: agent_pb2.Job, cooldown_max_wait: float) -> tuple[float, str]:
    """(seconds, how they add up) that the job's own settings justify."""
    eff = effective_settings(job.settings)
    max_seconds = eff.max_seconds if math.isfinite(eff.max_seconds) else math.inf
    max_seconds = max(0.0, max_seconds)
    cooldown = max(0.0, cooldown_max_wait) if job.settings.cooldown_below_celsius > 0 else 0.0
    seconds = cooldown + LOAD_ALLOWANCE_S + RUN_FACTOR * max_seconds + MARGIN_S
    parts = [f"load {LOAD_ALLOWANCE_S:g} s", f"{RUN_FACTOR:g} x max_seconds {max_seconds:g} s",
             f"margin {MARGIN_S:g} s"]
    if cooldown:
        parts.insert(0, f"cooldown wait {cooldown:g} s")
    return seconds, "its measurement budget (" + " + ".join(parts) + ")"


def job_limit(job: agent_pb2.Job, cooldown_max_wait: float, max_job_seconds: float) -> JobLimit:
    """The wall-clock limit of `job`: the smallest of its timeout, its budget and the cap."""
    budget, budget_reason = measurement_budget(job, cooldown_max_wait)
    candidates = [(max_job_seconds, f"the agent's cap (--max-job-seconds {max_job_seconds:g})")]
    if job.timeout_seconds > 0:  # NaN and 0 (no timeout) both fail this
        candidates.append((job.timeout_seconds, "the job's timeout_seconds"))
    candidates.append((budget, budget_reason))
    seconds, reason = min(candidates, key=lambda c: c[0])
    return JobLimit(seconds, reason)
