"""Measurement defaults and agent exit codes, kept in one place so every module agrees."""

from __future__ import annotations

from edgescore.v1 import common_pb2

# Applied when a MeasurementSettings field is 0 ("server default" in common.proto). The server
# normally fills these in; the agent still resolves them so a bare job measures sensibly.
DEFAULTS = {
    "warmup_runs": 10,
    "min_runs": 50,
    "min_seconds": 1.0,
    "max_seconds": 30.0,
}

# Process exit codes of `edgescore-agent`.
EXIT_OK = 0
EXIT_UNAUTHENTICATED = 3


def effective_settings(
    settings: common_pb2.MeasurementSettings | None,
) -> common_pb2.MeasurementSettings:
    """Return a copy of `settings` with zero measurement knobs replaced by DEFAULTS.

    threads, batch_size, input_shape, format and precision are left as given: the runner and the
    worker fill those in from what they actually used.
    """
    out = common_pb2.MeasurementSettings()
    if settings is not None:
        out.CopyFrom(settings)
    for field, default in DEFAULTS.items():
        if not getattr(out, field):
            setattr(out, field, default)
    return out
