"""Agent settings: flags > EDGESCORE_AGENT_* environment > config file (--config) > defaults.

The layers and their rules are edgescore.config's, shared with the server: the file is JSON, or
TOML where `tomllib` (Python 3.11+) or `tomli` is importable; its keys are the field names of
AgentConfig (`tags` is a table / object).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from edgescore.config import (
    add_setting_flags,
    env_name,
    load_settings,
    parse_pairs,
    read_secret_files,
)
from edgescore.device_agent.limits import DEFAULT_MAX_JOB_SECONDS
from edgescore.logs import check_format

ENV_PREFIX = "EDGESCORE_AGENT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class AgentConfig:
    server: str = "127.0.0.1:50051"
    device_class: str = "local-cpu"
    token: str = ""                   # fleet token; empty = none
    token_file: str = ""              # or read it from this file (kept out of ps)
    tags: dict = field(default_factory=dict)
    heartbeat_interval: float = 5.0   # used until the server's Registered sets its own
    log_level: str = "INFO"
    log_format: str = "text"          # "json": one JSON object per line
    tls_ca: str = ""                  # CA bundle that signed the server cert; "default": gRPC roots
    tls_cert: str = ""                # client certificate chain (mutual TLS)
    tls_key: str = ""                 # its private key
    tls_server_name: str = ""         # expected name in the server cert, when dialling by IP
    work_dir: str = ""                # empty: $XDG_CACHE_HOME/edgescore-agent or ~/.cache/...
    metrics_port: int = -1            # -1 disabled, 0 picks a free port
    metrics_address: str = "127.0.0.1"  # /metrics has no authentication
    cooldown_max_wait: float = 300.0  # cap of the optional cooldown wait, seconds
    cooldown_poll: float = 2.0
    max_job_seconds: float = DEFAULT_MAX_JOB_SECONDS  # watchdog cap of any one job (limits.py)
    max_threads: int = 0              # a job's settings.threads cap; 0: 4 x this board's cores
    replay: str = ""                  # "hw-nas-bench" or "help": answer from a table, not timing
    csv: str = ""                     # the replay table (its header says which)
    device: str = ""                  # the replayed device: a latency column of the table

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)


_HELP = {
    "server": "server HOST:PORT",
    "device_class": "device class this agent serves",
    "token": "fleet token (visible in ps: prefer --token-file or the environment)",
    "token_file": "file holding the fleet token (surrounding whitespace stripped)",
    "heartbeat_interval": "heartbeat period (s) until the server sets one",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text, or json: one JSON object per line (ts, level, logger, message)",
    "tls_ca": "PEM CA bundle of the server certificate (enables TLS); 'default' = gRPC's roots",
    "tls_cert": "PEM client certificate chain for mutual TLS",
    "tls_key": "PEM private key of --tls-cert",
    "tls_server_name": "name to verify in the server certificate instead of the host dialled",
    "work_dir": "the only folder the agent may write to (TMPDIR points there)",
    "metrics_port": "serve Prometheus /metrics on this port; 0 picks one, -1 disables",
    "metrics_address": "bind address of /metrics (no authentication: 0.0.0.0 only where the "
                       "network is trusted)",
    "cooldown_max_wait": "longest wait (s) for a job's cooldown_below_celsius",
    "cooldown_poll": "temperature polling period (s) while cooling down",
    "max_job_seconds": "longest any one job may run (s) before its measurement process is killed",
    "max_threads": "refuse jobs asking for more runtime threads; 0 = 4 x this board's cores",
    "replay": "answer jobs with a benchmark's measured latencies instead of timing: "
              "'hw-nas-bench' (NB201) or 'help' (HELP's 27 devices; NB201 or FBNet)",
    "csv": "the replay table: HW-NAS-Bench's (hw_nas_bench_c10_dev.csv, the official examples) "
           "or HELP's (help_latency_27devices_dev.csv of nb201/ or fbnet/)",
    "device": "replayed device, a column of --csv: raspi4, pixel3, edgegpu, edgetpu, eyeriss, "
              "fpga (HW-NAS-Bench); e.g. titan_rtx_256 (batch 256), gold_6226, pixel2 (HELP)",
}


def default_work_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgescore-agent")


def _tag(text: str) -> dict:
    """One --tag: "k=v", or several "k=v,k2=v2" as in the environment (none dropped)."""
    try:
        tags = parse_pairs(text)
    except ValueError:
        tags = {}
    if not tags:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return tags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgescore-agent",
        description="Dial out to an edgescore server and measure model latency on this device. "
        f"Every setting can also come from {ENV_PREFIX}<NAME> or a --config file; flags win.",
    )
    p.add_argument("--config", help="JSON (or TOML, Python 3.11+ / tomli) file of settings")
    p.add_argument("--tag", dest="tags", action="append", type=_tag, default=None,
                   metavar="KEY=VALUE",
                   help="tag reported to the server; repeatable "
                   f"(env {env_name(ENV_PREFIX, 'tags')}=k=v,...)")
    add_setting_flags(p, AgentConfig, ENV_PREFIX, help_text=_HELP, skip=("tags",),
                      shown_defaults={"work_dir": "~/.cache/edgescore-agent"})
    return p


def load_config(argv: list | None = None) -> AgentConfig:
    """Parse argv (None = sys.argv) and merge the layers; exits with usage on bad input."""
    parser = build_parser()
    config = load_settings(AgentConfig, parser, ENV_PREFIX, argv)
    read_secret_files(parser, config, ENV_PREFIX, ("token",))
    config.log_level = config.log_level.upper()
    if config.log_level not in LOG_LEVELS:
        parser.error(f"--log-level: {config.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    try:
        config.log_format = check_format(config.log_format)
    except ValueError as exc:
        parser.error(f"--log-format: {exc}")
    if not config.max_job_seconds > 0:
        parser.error(f"--max-job-seconds: must be > 0, got {config.max_job_seconds!r}")
    if config.max_threads < 0:
        parser.error(f"--max-threads: must be >= 0, got {config.max_threads}")
    if bool(config.tls_cert) != bool(config.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return config
