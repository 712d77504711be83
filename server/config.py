"""Server settings: flags > EDGESCORE_SERVER_* environment > config file (TOML or JSON) > defaults.

The layers and their rules are edgescore.config's, shared with the agent.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from edgescore.config import add_setting_flags, flag_name, load_settings, read_secret_files
from edgescore.logs import check_format

ENV_PREFIX = "EDGESCORE_SERVER_"


@dataclass
class ServerConfig:
    address: str = "0.0.0.0:50051"
    # /metrics has no authentication: loopback unless the scraper's network is trusted.
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9464          # 0 picks a free port, -1 disables /metrics
    device: str = "cpu"               # torch device for proxies: cpu or cuda
    fleet_token: str = ""             # agents must present it when set
    fleet_token_file: str = ""        # or read it from this file (kept out of ps)
    api_token: str = ""               # scoring, fleet and reflection clients must present it
    api_token_file: str = ""          # or read it from this file (kept out of ps)
    heartbeat_interval: float = 5.0
    missed_heartbeats: int = 3
    latency_timeout: float = 120.0    # default per-device wait of a Score request
    # The compute plane (proxies and exports; docs/performance.md): "local" worker processes,
    # or "ray" (a Ray cluster at --ray-address; "auto" or empty: the one `ray start` left here).
    compute: str = "local"
    ray_address: str = ""
    compute_workers: int = 0          # local: processes (0: one per core; cuda: one per GPU)
    workers_per_gpu: int = 1          # --device cuda: worker processes sharing each GPU
    max_compute_seconds: float = 300.0  # one unit of work, at most (DEADLINE_EXCEEDED past it)
    worker_max_memory_mb: int = 0     # one local worker's RSS cap (0: 80 % of RAM / workers)
    max_queued: int = 1024            # units waiting for a worker (RESOURCE_EXHAUSTED past it)
    max_queued_per_client: int = 256  # of which one client (connection) may hold
    stream_window: int = 32           # candidates of one ScoreStream in progress at once
    # Replicas on one PostgreSQL store share the latency job queue: a replica's running jobs go
    # back to the queue this long after it stops renewing them (killed mid-job).
    replica_lease_seconds: float = 15.0
    grace_seconds: float = 10.0       # SIGTERM: finish in-flight RPCs for this long
    port_file: str = ""               # write {"port":..., "metrics_port":...} once serving
    dataset_max_bytes: int = 64 * 1024 * 1024   # one RegisterDataset upload, at most
    dataset_store_bytes: int = 512 * 1024 * 1024  # all registered datasets; LRU dropped past it
    tls_cert: str = ""                # PEM server certificate chain: serve TLS, not plain text
    tls_key: str = ""                 # its private key
    tls_client_ca: str = ""           # PEM CA: mutual TLS, clients and agents need a cert it signed
    log_level: str = "INFO"
    log_format: str = "text"          # "json": one JSON object per line (edgescore.logs)
    # Results store: "" = SQLite file in the user's data dir, a path, ":memory:" (nothing kept
    # across restarts), or a postgresql://user:pass@host/db URL.
    db: str = ""
    # Archs in each proxy's reference population (weighted_rank); computed on first use.
    population_size: int = 100
    # CSV of space,arch,accuracy: labelled archs the `learned` proxy is fitted on ("": none).
    label_set: str = ""
    # Size caps on one candidate (RESOURCE_EXHAUSTED with the figure and the cap past them).
    max_params: int = 500_000_000
    max_macs: int = 100_000_000_000
    max_input_resolution: int = 1024
    max_onnx_bytes: int = 200 * 1024 * 1024
    max_graph_nodes: int = 50_000
    # ONNX uploads: tensors alive at once, estimated from the graph's shapes (spaces/onnx_memory).
    max_activation_mb: int = 4096


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgescore-server", description=__doc__)
    parser.add_argument("--config", help="TOML or JSON file with the settings below")
    add_setting_flags(parser, ServerConfig, ENV_PREFIX)
    return parser


def load_config(argv: list[str] | None = None) -> ServerConfig:
    """Parse argv (None = sys.argv) and merge the layers; exits with usage on bad input."""
    parser = build_parser()
    config = load_settings(ServerConfig, parser, ENV_PREFIX, argv)
    read_secret_files(parser, config, ENV_PREFIX, ("api_token", "fleet_token"))
    if config.compute not in ("local", "ray"):
        parser.error(f"--compute: 'local' or 'ray', not {config.compute!r}")
    for name in ("compute_workers", "worker_max_memory_mb"):
        if getattr(config, name) < 0:
            parser.error(f"{flag_name(name)}: must be >= 0")
    for name in ("workers_per_gpu", "max_queued", "max_queued_per_client", "stream_window"):
        if getattr(config, name) < 1:
            parser.error(f"{flag_name(name)}: must be >= 1")
    for name in ("max_compute_seconds", "replica_lease_seconds"):
        if not getattr(config, name) > 0:
            parser.error(f"{flag_name(name)}: must be a finite number > 0")
    try:
        config.log_format = check_format(config.log_format)
    except ValueError as exc:
        parser.error(f"--log-format: {exc}")
    if config.label_set and not Path(config.label_set).is_file():
        parser.error(f"--label-set: no file {config.label_set!r}")
    if bool(config.tls_cert) != bool(config.tls_key) or (config.tls_client_ca
                                                          and not config.tls_cert):
        parser.error("--tls-cert and --tls-key go together; --tls-client-ca needs them")
    return config
