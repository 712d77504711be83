"""One job in, one AgentMessage (result or failure) out: the measurement itself, in this process."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from edgescore.device_agent.cooldown import ClockSampler, finish_trace, wait_for_cooldown
from edgescore.device_agent.energy import close_sensor, detect_sensor
from edgescore.device_agent.energy_meter import EnergyMeter
from edgescore.device_agent.limits import DEFAULT_MAX_JOB_SECONDS
from edgescore.device_agent.protocol import effective_settings
from edgescore.device_agent.thermal import read_env
from edgescore.device_agent.timing import MeasurementAborted, UnsupportedAccelerator
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

CANCELLED_DETAIL = "cancelled by server"


@dataclass
class WorkerOptions:
    """Agent-side knobs of the protocol (the job's settings say *whether* to cool down)."""

    cooldown_max_wait: float = 300.0  # seconds; a board that never cools is timed anyway
    cooldown_poll: float = 2.0
    # The watchdog's absolute cap of one job (limits.job_limit); run_job alone does not use it.
    max_job_seconds: float = DEFAULT_MAX_JOB_SECONDS
    max_threads: int = 0  # settings.threads cap (limits.settings_refusal); 0: 4 x the cores


def failure(job_id: str, kind: int, detail: str) -> agent_pb2.AgentMessage:
    """A JobFailure reply."""
    return agent_pb2.AgentMessage(
        failure=agent_pb2.JobFailure(job_id=job_id, kind=kind, detail=detail)
    )


def measure_function(fmt: int):
    """The measure function for an artifact format, imported lazily so that a broken runtime
    install fails its jobs, not the agent. None for a format this agent cannot time."""
    if fmt == common_pb2.ONNX:
        from edgescore.device_agent.onnx_runner import measure_onnx

        return measure_onnx
    if fmt == common_pb2.TFLITE:
        from edgescore.device_agent.tflite_runner import measure_tflite

        return measure_tflite
    return None


def check_artifact(job: agent_pb2.Job) -> agent_pb2.AgentMessage | None:
    """ARTIFACT_CORRUPT failure when the data does not hash to the artifact's sha256, else None."""
    art = job.artifact
    digest = hashlib.sha256(art.data).hexdigest()
    if digest == art.sha256.strip().lower():
        return None
    return failure(
        job.job_id,
        common_pb2.ARTIFACT_CORRUPT,
        f"sha256 mismatch: artifact says {art.sha256 or '(empty)'}, data hashes to {digest}"
        f" ({len(art.data)} bytes)",
    )


def run_job(
    job: agent_pb2.Job,
    cancel: threading.Event | None = None,
    options: WorkerOptions | None = None,
) -> agent_pb2.AgentMessage:
    """Verify, optionally cool down, measure and report one job, in this process. Never raises.

    Failure kinds: ARTIFACT_CORRUPT (sha256 mismatch), UNSUPPORTED_FORMAT (not ONNX / TFLITE, or
    the runtime for it is not installed), RUNTIME_ERROR (runtime or input errors), TIMEOUT
    (job.timeout_seconds passed, checked between runs and while cooling down),
    FAILURE_KIND_UNSPECIFIED with detail CANCELLED_DETAIL when `cancel` is set.
    The agent itself runs jobs through isolation.ProcessRunner, which adds a watchdog.
    """
    corrupt = check_artifact(job)
    if corrupt is not None:
        return corrupt
    limit = job.timeout_seconds if job.timeout_seconds > 0 else None
    return measure_job(
        job, cancel, options, limit, f"job exceeded timeout_seconds={job.timeout_seconds:g}"
    )


def measure_job(
    job: agent_pb2.Job,
    cancel: threading.Event | None,
    options: WorkerOptions | None,
    time_limit: float | None,
    limit_text: str,
) -> agent_pb2.AgentMessage:
    """run_job after the sha256 check: `time_limit` seconds from now (None: no limit) are checked
    between runs and while cooling down; a TIMEOUT failure's detail starts with `limit_text`."""
    opts = options or WorkerOptions()
    art = job.artifact
    fmt = art.format or job.settings.format or common_pb2.ONNX
    name = common_pb2.ArtifactFormat.Name(fmt) if fmt in (1, 2) else str(fmt)
    try:
        measure = measure_function(fmt)
    except Exception as exc:  # ImportError, or a native library that fails to load
        return failure(
            job.job_id,
            common_pb2.UNSUPPORTED_FORMAT,
            f"artifact format {name}: its runtime is not installed on this agent ({exc})",
        )
    if measure is None:
        return failure(
            job.job_id,
            common_pb2.UNSUPPORTED_FORMAT,
            f"artifact format {name} is not supported by this agent (ONNX and TFLITE only)",
        )

    deadline = time.monotonic() + time_limit if time_limit is not None else None

    def should_stop() -> bool:
        if cancel is not None and cancel.is_set():
            return True
        return deadline is not None and time.monotonic() > deadline

    trace = common_pb2.ThermalTrace()
    sampler = ClockSampler()
    sensor = detect_sensor()
    meter = EnergyMeter(sensor)
    try:
        if job.settings.cooldown_below_celsius > 0:
            wait_for_cooldown(
                trace,
                job.settings.cooldown_below_celsius,
                opts.cooldown_max_wait,
                opts.cooldown_poll,
                should_stop,
            )
        env_before = read_env()
        stats, info = measure(art.data, job.settings, art.input_name, should_stop, sampler,
                              artifact_sha256=art.sha256, meter=meter)
    except MeasurementAborted as exc:
        if cancel is not None and cancel.is_set():
            return failure(job.job_id, common_pb2.FAILURE_KIND_UNSPECIFIED, CANCELLED_DETAIL)
        return failure(job.job_id, common_pb2.TIMEOUT, f"{limit_text} ({exc})")
    except Exception as exc:
        log.debug("job %s failed", job.job_id, exc_info=True)
        kind = (common_pb2.UNSUPPORTED_ACCELERATOR if isinstance(exc, UnsupportedAccelerator)
                else common_pb2.RUNTIME_ERROR)
        return failure(job.job_id, kind, f"{type(exc).__name__}: {exc}")
    finally:
        close_sensor(sensor)
    env_after = read_env()
    throttled = finish_trace(trace, sampler, env_before, env_after)

    settings = effective_settings(job.settings)
    del settings.input_shape[:]
    settings.input_shape.extend(info["input_shape"])
    if not settings.batch_size and info["input_shape"]:
        settings.batch_size = info["input_shape"][0]
    settings.format = fmt
    settings.precision = art.precision or job.settings.precision or common_pb2.FP32
    return agent_pb2.AgentMessage(
        result=agent_pb2.JobResult(
            job_id=job.job_id,
            stats=stats,
            settings=settings,
            runtime=info["runtime"],
            runtime_version=info["runtime_version"],
            execution_provider=info["execution_provider"],
            env_before=env_before,
            env_after=env_after,
            throttled=throttled,
            thermal=trace,
            energy=meter.result if meter.result.measured or meter.result.note else
            common_pb2.EnergyStats(note="the runner did not meter its timed runs"),
            execution_providers_used=info.get("execution_providers_used", []),
            provider_fallback=bool(info.get("provider_fallback", False)),
            delegate=info.get("delegate", ""),
            nodes_per_provider=info.get("nodes_per_provider", {}),
        )
    )
