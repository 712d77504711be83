"""What one job may ask of this board: its settings' caps, and how long it may take.

The agent owns its board, so it checks every job's settings against its own caps before any
runtime starts (`settings_refusal`): a job over them fails at once, naming the setting and the cap,
whatever the server let through (the server has caps of its own, server/fleet/measurement.py).
Threads are capped at --max-threads (default THREADS_PER_CORE x this board's cores), run counts and
the batch at the AGENT_MAX_* below, min_seconds at --max-job-seconds (a job that must time runs
longer than the cap cannot succeed), and the input tensor the runtime allocates at
MAX_INPUT_ELEMENTS. max_seconds only has to be finite: it is a ceiling the timed runs stop at, and
the watchdog below already ends a job at --max-job-seconds, so the server's default of 30 s still
runs on an agent capped lower.

Then the wall-clock limit:

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
import os
from dataclasses import dataclass

from edgescore.device_agent.protocol import effective_settings
from edgescore.v1 import agent_pb2, common_pb2

# Parsing and optimising a large graph (ONNX graph optimisations, the XNNPACK delegate) takes
# tens of seconds on a Raspberry Pi for a model near the server's 200 MiB cap.
LOAD_ALLOWANCE_S = 60.0
# One max_seconds for the timed runs; warm-up is counted in runs, not seconds, so it gets about
# as much again, and the last timed run may overshoot max_seconds by one run's latency.
RUN_FACTOR = 3.0
MARGIN_S = 10.0
DEFAULT_MAX_JOB_SECONDS = 900.0
# Oversubscription studies may want a few threads per core; a million made onnxruntime allocate
# ~3 GB and crash.
THREADS_PER_CORE = 4
AGENT_MAX_WARMUP_RUNS = 1_000
AGENT_MAX_MIN_RUNS = 10_000
AGENT_MAX_BATCH = 1024
# 1 GiB of float32 input: a batch of 1024 at 1024 x 1024 would need 12 GiB before the first run.
MAX_INPUT_ELEMENTS = 2**28
# Settings that must be finite and >= 0 (NaN fails the check too).
_SECONDS = ("min_seconds", "max_seconds", "cooldown_below_celsius")


def _text(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def default_max_threads() -> int:
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def settings_refusal(settings: common_pb2.MeasurementSettings, max_threads: int,
                     max_job_seconds: float) -> str | None:
    """Why this board will not run a job with `settings` (the setting, its value and the cap),
    or None. `max_threads` 0 means default_max_threads()."""
    eff = effective_settings(settings)
    for name in _SECONDS:
        value = getattr(eff, name)
        if not 0 <= value < math.inf:
            return f"settings.{name} = {value!r}: must be a finite number >= 0"
    caps = (("threads", eff.threads, max_threads or default_max_threads(), "--max-threads"),
            ("warmup_runs", eff.warmup_runs, AGENT_MAX_WARMUP_RUNS, "the agent's run cap"),
            ("min_runs", eff.min_runs, AGENT_MAX_MIN_RUNS, "the agent's run cap"),
            ("min_seconds", eff.min_seconds, max_job_seconds, "--max-job-seconds"),
            ("batch_size", eff.batch_size, AGENT_MAX_BATCH, "the agent's batch cap"))
    for name, value, cap, which in caps:
        if value > cap:
            return (f"settings.{name} = {_text(value)} exceeds this agent's cap {_text(cap)} "
                    f"({which})")
    elements = math.prod(eff.input_shape) if eff.input_shape else 0
    if elements > MAX_INPUT_ELEMENTS:
        return (f"settings.input_shape {list(eff.input_shape)} has {elements} elements, over "
                f"this agent's cap {MAX_INPUT_ELEMENTS}")
    return None


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
