"""Logging shared by the server and the agent: plain text (default) or one JSON object per line.

`--log-format json` (env EDGESCORE_SERVER_LOG_FORMAT / EDGESCORE_AGENT_LOG_FORMAT) makes every
record a single line
``{"ts": ..., "level": ..., "logger": ..., "message": ..., "request_id": ..., "exception": ...}``
(`request_id` only when known, `exception` only when the record carries one; fields passed with
``extra=`` are added as they are). The request id is whatever the server's interceptor put in
REQUEST_ID for the RPC being handled on this thread; code on other threads (worker pools) has it
only if it was run in a copy of the handler's context (``contextvars.copy_context().run``).

Standard library only: the agent imports this on Python 3.9 boards.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import datetime, timezone

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# gRPC metadata key of the request id, in both directions.
REQUEST_ID_METADATA_KEY = "x-request-id"

REQUEST_ID: ContextVar[str] = ContextVar("edgescore_request_id", default="")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = _jsonable(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def check_format(fmt: str) -> str:
    """The normalised format name; ValueError for anything but text or json."""
    name = str(fmt).strip().lower()
    if name not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    return name


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging to stderr in the given format, like logging.basicConfig: nothing changes when
    the root logger already has handlers (a test harness, an embedding program)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if check_format(fmt) == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=str(level).upper(), handlers=[handler])
