"""Domain errors of the server and their one mapping to gRPC status codes.

Server code raises these (and nothing gRPC-specific); the service layer turns them into a status
with `status_code`, so every entry point answers the same way for the same problem.

A message is bounded where it is set (`ServerError.message`): it travels as the `grpc-message`
trailer, and a client refuses metadata over its limit (8 KiB by default) with RESOURCE_EXHAUSTED,
which would hide the real status. Values a client sent are echoed through `shown`.
"""

from __future__ import annotations

import re

import grpc

MAX_MESSAGE_CHARS = 1000
# Percent-encoded in the trailer, a byte of UTF-8 can take three characters: 3 x 1,500 bytes
# stays well under the client's 8 KiB metadata limit, next to the request id.
MAX_MESSAGE_BYTES = 1500
SHOWN_CHARS = 100


def bounded(message: str) -> str:
    """`message` cut to MAX_MESSAGE_CHARS characters and MAX_MESSAGE_BYTES bytes of UTF-8."""
    if len(message) <= MAX_MESSAGE_CHARS and len(message.encode("utf-8", "replace")) <= (
            MAX_MESSAGE_BYTES):
        return message
    cut = message[:MAX_MESSAGE_CHARS]
    cut = cut.encode("utf-8", "replace")[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
    return cut[:-len(" [truncated]")] + " [truncated]"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A client-supplied value as an error message echoes it: quoted, and past `limit`
    characters cut short with its full length, e.g. 'aaaa...' (100,000 characters)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


class ServerError(Exception):
    """Base class: `code` is the gRPC status the service layer answers with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(bounded(message))
        self.message = message

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = bounded(text)

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


# How runtimes say they ran out of memory: torch's CPU allocator ("DefaultCPUAllocator: not enough
# memory: you tried to allocate ..."), its CUDA one ("Tried to allocate ..."), onnxruntime's
# arenas ("Failed to allocate memory"), C++ and Python, and the agent's report of a measurement
# process the kernel's out-of-memory killer ended (SIGKILL).
_OUT_OF_MEMORY = re.compile(r"out of memory|not enough memory|DefaultCPUAllocator|tried to allocate"
                            r"|failed to allocate|bad_alloc|MemoryError|SIGKILL", re.IGNORECASE)


def reads_as_out_of_memory(text: str) -> bool:
    """Whether an error's text says memory ran out (RESOURCE_EXHAUSTED, not a crash)."""
    return bool(_OUT_OF_MEMORY.search(text))


GENERIC_INTERNAL_MESSAGE = "internal error; see the server log for this request id"


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and client-facing message for any exception; unexpected ones stay generic."""
    if isinstance(exc, ServerError):
        return exc.code, exc.message
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE
