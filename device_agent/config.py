"""Agent settings: flags > EDGESCORE_* environment > config file (--config) > defaults.

The config file is JSON everywhere, or TOML where `tomllib` (Python 3.11+) or `tomli` is
importable; keys are the field names of AgentConfig (`tags` is a table / object).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgescore.logs import check_format

from .limits import DEFAULT_MAX_JOB_SECONDS

ENV_PREFIX = "EDGESCORE_"


@dataclass
class AgentConfig:
    server: str = "127.0.0.1:50051"
    device_class: str = "local-cpu"
    token: str = ""                   # fleet token; empty = none
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
    metrics_address: str = "0.0.0.0"
    cooldown_max_wait: float = 300.0  # cap of the optional cooldown wait, seconds
    cooldown_poll: float = 2.0
    max_job_seconds: float = DEFAULT_MAX_JOB_SECONDS  # watchdog cap of any one job (limits.py)
    replay: str = ""                  # "hw-nas-bench": answer from a table instead of timing
    csv: str = ""                     # the replay table
    device: str = ""                  # the replayed board (raspi4, pixel3, edgegpu, ...)

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)


_HELP = {
    "server": "server HOST:PORT",
    "device_class": "device class this agent serves",
    "token": "fleet token",
    "heartbeat_interval": "heartbeat period (s) until the server sets one",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text, or json: one JSON object per line (ts, level, logger, message)",
    "tls_ca": "PEM CA bundle of the server certificate (enables TLS); 'default' = gRPC's roots",
    "tls_cert": "PEM client certificate chain for mutual TLS",
    "tls_key": "PEM private key of --tls-cert",
    "tls_server_name": "name to verify in the server certificate instead of the host dialled",
    "work_dir": "the only folder the agent may write to (TMPDIR points there)",
    "metrics_port": "serve Prometheus /metrics on this port; 0 picks one, -1 disables",
    "metrics_address": "bind address of /metrics",
    "cooldown_max_wait": "longest wait (s) for a job's cooldown_below_celsius",
    "cooldown_poll": "temperature polling period (s) while cooling down",
    "max_job_seconds": "longest any one job may run (s) before its measurement process is killed",
    "replay": "'hw-nas-bench': answer NB201 jobs with HW-NAS-Bench's measured latencies",
    "csv": "the replay table (hw_nas_bench_c10_dev.csv or the official examples file)",
    "device": "replayed board: raspi4, pixel3, edgegpu, edgetpu, eyeriss, fpga",
}


def default_work_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgescore-agent")


def parse_tags(text: str) -> dict:
    """"k=v,k2=v2" (env form) → dict; raises ValueError on an item without '='."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _tag(text: str) -> dict:
    """One --tag: "k=v", or several "k=v,k2=v2" as in EDGESCORE_TAGS (none dropped)."""
    try:
        tags = parse_tags(text)
    except ValueError:
        tags = {}
    if not tags:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return tags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgescore-agent",
        description="Dial out to an edgescore server and measure model latency on this device. "
        "Every setting can also come from EDGESCORE_<NAME> or a --config file; flags win.",
    )
    p.add_argument("--config", help="JSON (or TOML, Python 3.11+ / tomli) file of settings")
    for f in fields(AgentConfig):
        if f.name == "tags":
            p.add_argument("--tag", dest="tags", action="append", type=_tag, default=None,
                           metavar="KEY=VALUE",
                           help="tag reported to the server; repeatable "
                           "(env EDGESCORE_TAGS=k=v,...)")
            continue
        default = f.default if f.name != "work_dir" else "~/.cache/edgescore-agent"
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                       help=f"{_HELP[f.name]} (env {ENV_PREFIX}{f.name.upper()}; "
                       f"default {default!r})")
    return p


def _read_file(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".toml"):
        try:
            import tomllib as toml
        except ImportError:  # Python < 3.11: tomli is the same parser, if installed
            try:
                import tomli as toml  # type: ignore[no-redef]
            except ImportError:
                raise ValueError(
                    f"{path}: TOML needs Python 3.11+ or `pip install tomli`; use JSON"
                ) from None
        return toml.loads(text)
    return json.loads(text)


def _coerce(name: str, value: Any) -> Any:
    if name == "tags":
        return parse_tags(value) if isinstance(value, str) else {str(k): str(v)
                                                                 for k, v in dict(value).items()}
    kind = type(getattr(AgentConfig, name))
    if name == "log_level":
        return str(value).upper()
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{name}: expected a {kind.__name__}, got {value!r}")
    converted = kind(value)
    if kind is float and not math.isfinite(converted):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return converted


def load_config(argv: list | None = None) -> AgentConfig:
    """Parse argv (None = sys.argv) and merge the sources; exits with usage on bad input."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    names = [f.name for f in fields(AgentConfig)]
    try:
        layers = [_read_file(ns.config) if ns.config else {}]
    except (OSError, ValueError) as exc:
        parser.error(f"--config: {exc}")
    if not isinstance(layers[0], dict):
        parser.error(f"--config: {ns.config} must hold an object of settings, "
                     f"not a {type(layers[0]).__name__}")
    unknown = set(layers[0]) - set(names)
    if unknown:
        parser.error(f"unknown settings in {ns.config}: {', '.join(sorted(unknown))}")
    layers.append({n: os.environ[ENV_PREFIX + n.upper()] for n in names
                   if os.environ.get(ENV_PREFIX + n.upper()) not in (None, "")})
    layers.append({n: getattr(ns, n) for n in names if getattr(ns, n) is not None})
    values: dict = {}
    tags: dict = {}
    try:
        for layer in layers:
            for name, raw in layer.items():
                if name == "tags":  # merged key by key, later layers winning
                    # --tag gives a list of dicts (one per flag); files and env a dict / text.
                    for part in (raw if isinstance(raw, list) else [raw]):
                        tags.update(_coerce("tags", part))
                else:
                    values[name] = _coerce(name, raw)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    config = AgentConfig(**values, tags=tags)
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        parser.error(f"--log-level: {config.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    try:
        config.log_format = check_format(config.log_format)
    except ValueError as exc:
        parser.error(f"--log-format: {exc}")
    if not config.max_job_seconds > 0:
        parser.error(f"--max-job-seconds: must be > 0, got {config.max_job_seconds!r}")
    if bool(config.tls_cert) != bool(config.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return config
