"""The one place where domain errors become gRPC statuses."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from edgescore.server.errors import ServerError, status_of

log = logging.getLogger("edgescore.server.rpc")

F = TypeVar("F", bound=Callable[..., Any])


def abort_with(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    code, message = status_of(exc)
    if not isinstance(exc, ServerError):
        incident = uuid.uuid4().hex[:12]
        log.error("%s failed (incident %s)", method, incident, exc_info=exc)
        message = f"{message} (incident {incident})"
    context.abort(code, message)


def unary(method: F) -> F:
    """Decorate a unary servicer method: ServerError → its status, anything else → INTERNAL."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - this is the error boundary
            if context.code() not in (None, grpc.StatusCode.OK):
                raise  # already aborted by the method itself
            abort_with(context, exc, method.__name__)

    return wrapper  # type: ignore[return-value]
