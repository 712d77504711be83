"""`edgescore-agent`: command-line entry of the device agent."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Sequence

from edgescore import __version__
from edgescore.device_agent.config import AgentConfig, build_parser, default_work_dir, load_config
from edgescore.device_agent.connection import AgentConnection, channel_credentials
from edgescore.device_agent.metrics import AgentMetrics
from edgescore.device_agent.replay import SOURCES, ReplayTable
from edgescore.device_agent.worker import WorkerOptions
from edgescore.logs import configure as configure_logging

__all__ = ["build_parser", "main"]

log = logging.getLogger("edgescore.device_agent")

EXIT_USAGE = 2


def prepare_work_dir(path: str) -> str:
    """Create the agent's only writable folder (mode 0700) and return its absolute path."""
    path = os.path.abspath(os.path.expanduser(path or default_work_dir()))
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def contain_writes(work_dir: str) -> dict:
    """Point the process's scratch locations at `work_dir`; returns the previous values.

    Models load from bytes, so the agent itself writes nothing. Libraries might: onnxruntime's
    telemetry (on by default in recent Linux wheels) writes a device id and an event database under
    $XDG_CACHE_HOME at import time, so it is switched off and XDG_CACHE_HOME / TMPDIR point into the
    work dir for anything else. Must run before onnxruntime is imported.
    """
    changes = {"TMPDIR": work_dir, "XDG_CACHE_HOME": work_dir, "ORT_DISABLE_TELEMETRY": "1"}
    saved = {name: os.environ.get(name) for name in changes}
    saved["tempfile.tempdir"] = tempfile.tempdir
    os.environ.update(changes)
    tempfile.tempdir = work_dir
    return saved


def restore_env(saved: dict) -> None:
    """Undo contain_writes, for callers that run the agent in-process (tests)."""
    tempfile.tempdir = saved.pop("tempfile.tempdir")
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _replay(config: AgentConfig) -> tuple[dict, str]:
    """The replay table's runner and runtime, as AgentConnection keywords, and the device class."""
    if config.replay not in SOURCES:
        raise ValueError(f"--replay: unknown replay source {config.replay!r} "
                         f"(known: {', '.join(SOURCES)})")
    if not config.csv or not config.device:
        raise ValueError(f"--replay {config.replay} needs --csv FILE and --device DEVICE")
    table = ReplayTable(config.csv, config.device, config.replay)
    log.info("replaying %d %s %s latencies (batch %d) from %s", len(table.latency_ms),
             table.space, config.device, table.batch, config.csv)
    # Unless a class was chosen explicitly, the replayed device is the class clients target.
    device_class = config.device if config.device_class == "local-cpu" else config.device_class
    kwargs = {"runner": lambda job, _cancel, _options: table.run_job(job),
              "runtimes": [table.runtime_info()]}
    return kwargs, device_class


def _run(config: AgentConfig, stop: threading.Event) -> int:
    replay, device_class = {}, config.device_class
    if config.replay:
        try:
            replay, device_class = _replay(config)
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            return EXIT_USAGE
    credentials = None
    if config.tls:
        try:
            credentials = channel_credentials(config.tls_ca, config.tls_cert, config.tls_key)
        except OSError as exc:
            log.error("cannot read TLS files: %s", exc)
            return EXIT_USAGE
    metrics = AgentMetrics()
    metrics.set_info(device_class, __version__)
    if config.metrics_port >= 0:
        try:
            port = metrics.serve(config.metrics_port, config.metrics_address)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d: %s", config.metrics_address,
                      config.metrics_port, exc)
            return EXIT_USAGE
        log.info("serving metrics on http://%s:%d/metrics", config.metrics_address, port)
    conn = AgentConnection(
        config.server,
        device_class,
        token=config.token or None,
        tags=config.tags,
        heartbeat_fallback=config.heartbeat_interval,
        stop_event=stop,
        credentials=credentials,
        tls_server_name=config.tls_server_name,
        metrics=metrics,
        worker_options=WorkerOptions(config.cooldown_max_wait, config.cooldown_poll,
                                     config.max_job_seconds, config.max_threads),
        **replay,
    )
    try:
        return conn.run()
    finally:
        metrics.close()


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(list(argv) if argv is not None else None)
    configure_logging(config.log_level, config.log_format)
    work_dir = prepare_work_dir(config.work_dir)
    log.info("work dir %s (TLS %s)", work_dir, "on" if config.tls else "off")
    saved = contain_writes(work_dir)
    stop = threading.Event()
    previous = {}

    def _on_signal(signum, _frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread (e.g. embedded in a test): caller stops us
            pass
    try:
        return _run(config, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        restore_env(saved)


if __name__ == "__main__":
    raise SystemExit(main())
