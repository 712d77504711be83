"""Domain errors of the server and their one mapping to gRPC status codes.

Server code raises these (and nothing gRPC-specific); the service layer turns them into a status
with `status_code`, so every entry point answers the same way for the same problem.
"""

from __future__ import annotations

import grpc


class ServerError(Exception):
    """Base class: `code` is the gRPC status the service layer answers with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (compute workers, Ray); subclasses take other
        # constructor arguments, so rebuild from the class and the instance state instead.
        return _rebuild, (type(self), self.message, dict(self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> ServerError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class WorkAbandoned(BaseException):
    """Raised inside a computation whose every requester has gone (cancelled, deadline passed)
    or that ran past its time cap. A BaseException: the proxy engine's per-proxy error boundary
    (`except Exception`) must let it through and stop the whole unit of work."""


class InvalidArgument(ServerError):
    """A malformed request; `field` names where (e.g. "arch.nb201")."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(ServerError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(ServerError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ServerError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(ServerError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ServerError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServerError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NumericalFailure(ServerError):
    """A proxy produced NaN/inf or a decomposition failed: a per-proxy failure, not a crash."""

    code = grpc.StatusCode.FAILED_PRECONDITION


GENERIC_INTERNAL_MESSAGE = "internal error; see the server log for this request id"


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and client-facing message for any exception; unexpected ones stay generic."""
    if isinstance(exc, ServerError):
        return exc.code, exc.message
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE
