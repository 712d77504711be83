"""The one exception type users of the SDK catch."""

from __future__ import annotations

from typing import Optional

import grpc

# The standard gRPC trailer by which a server asks a client to retry after a pause.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


class EdgescoreError(Exception):
    """A failed call: `code` is the gRPC status code, `details` the server's message;
    `retry_after` (seconds) when the server asked to be tried again after a pause (a saturated
    compute queue answers RESOURCE_EXHAUSTED with it)."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.retry_after = retry_after

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> EdgescoreError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", _pushback(exc))


def _pushback(exc: grpc.RpcError) -> Optional[float]:
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - an error without trailers (e.g. a failed connection)
        return None
    for key, value in trailers:
        if key == RETRY_PUSHBACK_KEY:
            try:
                return max(0.0, int(value) / 1000.0)
            except ValueError:
                return None
    return None
