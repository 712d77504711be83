"""`edgescore-server`: serve gRPC and /metrics until SIGTERM/SIGINT, then drain gracefully."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from edgescore.logs import configure as configure_logging
from edgescore.server.config import ServerConfig, load_config
from edgescore.server.scoring.label_sets import LabelSetError
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
    try:
        return asyncio.run(serve(config))
    except LabelSetError as exc:
        log.error("--label-set: %s", exc)
        return 2


async def serve(config: ServerConfig) -> int:
    app = await create_server(config.address, config)
    metrics_port = -1
    if config.metrics_port >= 0:
        metrics_port = app.metrics.serve(config.metrics_port, config.metrics_address)
    host = config.address.rsplit(":", 1)[0]
    log.info("edgescore-server listening on %s:%d (metrics %s, device %s, compute %s)",
             host, app.port, f"{config.metrics_address}:{metrics_port}" if metrics_port >= 0
             else "off", config.device, config.compute)
    if config.port_file:
        tmp = Path(config.port_file + ".tmp")
        tmp.write_text(json.dumps({"port": app.port, "metrics_port": metrics_port}))
        tmp.replace(config.port_file)  # atomic: readers never see a half-written file

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", config.grace_seconds)
    await app.stop(config.grace_seconds)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
