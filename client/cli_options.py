"""What the client's commands share: option types and groups, the connection context, progress."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import click

from edgescore.client.api import Client

# The ranges of the v1 fields these options fill (uint32 / uint64): a value outside is a usage
# error here rather than protobuf's ValueError later.
UINT32 = click.IntRange(0, 2**32 - 1)
UINT64 = click.IntRange(0, 2**64 - 1)
IN_FLIGHT = click.IntRange(min=1)
SECONDS = click.FloatRange(min=0)
POSITIVE = click.FloatRange(min=0, min_open=True)


def split_list(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def progress(total: Optional[int], desc: str, disable: bool = False) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="arch", disable=disable, file=sys.stderr)


class Context:
    def __init__(self, server: str, token: str, tls_ca: str, tls_cert: str, tls_key: str,
                 timeout: float) -> None:
        self.server, self.token, self.timeout = server, token or None, timeout
        self.tls = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}

    def client(self) -> Client:
        # Checked here, not when the group parses its options: `serve`, `agent` and `eval` never
        # read these files, so a stale EDGESCORE_TLS_CA must not stop them.
        for key, path in self.tls.items():
            if path and path != "default" and not os.path.isfile(path):
                raise click.BadParameter(f"no such file: {path}",
                                         param_hint=f"'--{key.replace('_', '-')}'")
        return Client(self.server, token=self.token, timeout=self.timeout, **self.tls)


def measurement_options(f: Any) -> Any:
    for name, kind, text in (
            ("--max-seconds", SECONDS, "per-measurement time cap (s)"),
            ("--min-seconds", SECONDS, "time to keep timing at least (s)"),
            ("--min-runs", UINT32, "timed runs at least"),
            ("--warmup-runs", UINT32, "untimed runs first"),
            ("--threads", UINT32, "runtime intra-op threads on the board")):
        f = click.option(name, type=kind, help=text)(f)
    return f


def pop_measurement(kw: dict) -> dict:
    """Pop the measurement options out of a command's keyword arguments (those given)."""
    keys = ("warmup_runs", "min_runs", "min_seconds", "max_seconds", "threads")
    found = {k: kw.pop(k, None) for k in keys}
    return {k: v for k, v in found.items() if v is not None}
