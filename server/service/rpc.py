"""The one place where domain errors become gRPC statuses, and where a call's client is named."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from edgescore.server.compute.fairness import QueueFull
from edgescore.server.errors import ServerError, status_of

log = logging.getLogger("edgescore.server.rpc")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# A saturated compute queue is the one RESOURCE_EXHAUSTED worth retrying: the standard gRPC
# pushback trailer says when (the SDK retries only calls that carry it).
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
QUEUE_FULL_PUSHBACK_MS = 500


def client_of(context: grpc.aio.ServicerContext) -> str:
    """Who a call comes from, for the compute plane's fairness: its connection (a client's
    channel), e.g. "ipv4:10.0.0.7:53412"."""
    try:
        return context.peer() or "unknown"
    except Exception:  # noqa: BLE001 - a context without a peer (tests)
        return "unknown"


def item_status(exc: BaseException, what: str) -> tuple[grpc.StatusCode, str]:
    """A per-item status (ScoreStream items): unexpected errors logged, answered generically."""
    code, message = status_of(exc)
    if not isinstance(exc, ServerError):
        log.error("%s failed", what, exc_info=exc)
    return code, message


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    code, message = status_of(exc)
    if isinstance(exc, QueueFull):
        context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(QUEUE_FULL_PUSHBACK_MS)),))
    if not isinstance(exc, ServerError):
        incident = uuid.uuid4().hex[:12]
        log.error("%s failed (incident %s)", method, incident, exc_info=exc)
        message = f"{message} (incident {incident})"
    await context.abort(code, message)


def unary(method: F) -> F:
    """Decorate an async unary servicer method: ServerError → its status, anything else →
    INTERNAL. A cancelled call (client gone, deadline passed) just stops."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the error boundary
            await abort_with(context, exc, method.__name__)

    return wrapper  # type: ignore[return-value]
