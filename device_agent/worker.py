"""One job in, one AgentMessage (result or failure) out."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from edgescore.v1 import agent_pb2, common_pb2

from .protocol import effective_settings
from .thermal import is_throttled, read_env

log = logging.getLogger(__name__)

CANCELLED_DETAIL = "cancelled by server"


def _failure(job_id: str, kind: int, detail: str) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(
        failure=agent_pb2.JobFailure(job_id=job_id, kind=kind, detail=detail)
    )


def run_job(job: agent_pb2.Job, cancel: threading.Event | None = None) -> agent_pb2.AgentMessage:
    """Verify, measure and report one job. Never raises.

    Failure kinds: ARTIFACT_CORRUPT (sha256 mismatch), UNSUPPORTED_FORMAT (anything but ONNX),
    RUNTIME_ERROR (onnxruntime or input errors), TIMEOUT (job.timeout_seconds passed, checked
    between runs), FAILURE_KIND_UNSPECIFIED with detail CANCELLED_DETAIL when `cancel` is set.
    """
    art = job.artifact
    digest = hashlib.sha256(art.data).hexdigest()
    if digest != art.sha256.strip().lower():
        return _failure(
            job.job_id,
            common_pb2.ARTIFACT_CORRUPT,
            f"sha256 mismatch: artifact says {art.sha256 or '(empty)'}, data hashes to {digest}"
            f" ({len(art.data)} bytes)",
        )

    fmt = art.format or job.settings.format or common_pb2.ONNX
    if fmt != common_pb2.ONNX:
        name = common_pb2.ArtifactFormat.Name(fmt) if fmt in (1, 2) else str(fmt)
        return _failure(
            job.job_id,
            common_pb2.UNSUPPORTED_FORMAT,
            f"artifact format {name} is not supported by this agent: it measures ONNX with "
            "onnxruntime only (LiteRT / .tflite support is not implemented yet)",
        )

    deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds > 0 else None

    def should_stop() -> bool:
        if cancel is not None and cancel.is_set():
            return True
        return deadline is not None and time.monotonic() > deadline

    env_before = read_env()
    try:
        # Imported here so a broken onnxruntime install fails the job, not the agent.
        from .onnx_runner import MeasurementAborted, measure_onnx

        try:
            stats, info = measure_onnx(art.data, job.settings, art.input_name, should_stop)
        except MeasurementAborted as exc:
            if cancel is not None and cancel.is_set():
                return _failure(job.job_id, common_pb2.FAILURE_KIND_UNSPECIFIED, CANCELLED_DETAIL)
            return _failure(
                job.job_id,
                common_pb2.TIMEOUT,
                f"job exceeded timeout_seconds={job.timeout_seconds:g} ({exc})",
            )
    except Exception as exc:
        log.debug("job %s failed", job.job_id, exc_info=True)
        return _failure(job.job_id, common_pb2.RUNTIME_ERROR, f"{type(exc).__name__}: {exc}")
    env_after = read_env()

    settings = effective_settings(job.settings)
    del settings.input_shape[:]
    settings.input_shape.extend(info["input_shape"])
    if not settings.batch_size and info["input_shape"]:
        settings.batch_size = info["input_shape"][0]
    settings.format = common_pb2.ONNX
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
            throttled=is_throttled(env_before.throttled) or is_throttled(env_after.throttled),
        )
    )
