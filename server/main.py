"""`edgescore-server`: serve gRPC and /metrics until SIGTERM/SIGINT, then drain gracefully."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from edgescore.logs import configure as configure_logging
from edgescore.server.config import load_config
from edgescore.server.service.app import create_server

log = logging.getLogger("edgescore.server")


def main(argv: list[str] | None = None) -> int:
    config = load_config(argv)
    configure_logging(config.log_level, config.log_format)
    if config.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            log.error("--device %s requested but CUDA is not available", config.device)
            return 2
    app = create_server(config.address, config)
    metrics_port = -1
    if config.metrics_port >= 0:
        metrics_port = app.metrics.serve(config.metrics_port, config.metrics_address)
    host = config.address.rsplit(":", 1)[0]
    log.info("edgescore-server listening on %s:%d (metrics port %d, device %s)",
             host, app.port, metrics_port, config.device)
    if config.port_file:
        tmp = Path(config.port_file + ".tmp")
        tmp.write_text(json.dumps({"port": app.port, "metrics_port": metrics_port}))
        tmp.replace(config.port_file)  # atomic: readers never see a half-written file

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("draining (grace %.1fs)", config.grace_seconds)
    app.stop(config.grace_seconds)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
