"""`edgescore-agent`: command-line entry of the device agent."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Sequence

from .connection import run_agent

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_DEVICE_CLASS = "local-cpu"

log = logging.getLogger("edgescore.device_agent")


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgescore-agent",
        description="Dial out to an edgescore server and measure model latency on this device.",
    )
    # Flags win over the environment: argparse only uses these defaults when a flag is absent.
    p.add_argument(
        "--server",
        default=os.environ.get("EDGESCORE_SERVER") or DEFAULT_SERVER,
        help="server HOST:PORT (env EDGESCORE_SERVER, default %(default)s)",
    )
    p.add_argument(
        "--device-class",
        default=os.environ.get("EDGESCORE_DEVICE_CLASS") or DEFAULT_DEVICE_CLASS,
        help="device class this agent serves (env EDGESCORE_DEVICE_CLASS)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("EDGESCORE_TOKEN") or None,
        help="fleet token (env EDGESCORE_TOKEN)",
    )
    p.add_argument(
        "--tag",
        action="append",
        type=_tag,
        default=[],
        metavar="KEY=VALUE",
        help="free-form tag reported to the server; repeatable",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="heartbeat period when the server does not set one (default 5)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("EDGESCORE_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
        return run_agent(
            args.server,
            args.device_class,
            args.token,
            dict(args.tag),
            args.heartbeat_interval,
            stop,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
