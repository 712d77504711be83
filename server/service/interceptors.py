"""Server interceptor (grpc.aio): request ids, RPC counts and durations by method and final status
code, and one access-log line per RPC.

The status is read after the handler has finished, or, for a server-streaming or bidi RPC, after
its response stream has ended (the wrapper is itself an async generator around the handler's), so
a handler that aborts is counted under the code it aborted with, not as OK. A client that cancels
(or whose deadline passes) before the handler is done is counted as CANCELLED
(DEADLINE_EXCEEDED): the handler's task is cancelled then, and the wrapper records that. Each RPC
is recorded exactly once.

Request ids: the incoming `x-request-id` metadata value, else the request's own `request_id`
field (ScoreRequest), else a fresh uuid4 hex. It is sent back as initial and trailing metadata
`x-request-id`, filled into an empty `request_id` field of the request (so a ScoreResult echoes
it), and set in edgescore.logs.REQUEST_ID for the handler's task, so every log line of the RPC
carries it in JSON logs, including lines of the tasks the handler starts (they copy the context).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Optional

import grpc

from edgescore.logs import REQUEST_ID, REQUEST_ID_METADATA_KEY
from edgescore.server.metrics import Metrics

access_log = logging.getLogger("edgescore.server.access")
log = logging.getLogger(__name__)

MAX_REQUEST_ID_CHARS = 128
# The server's deadline starts when it reads the request, later than the client's by the time the
# request took to arrive and be scheduled; a client whose own deadline fired cancels the stream
# while the server still sees that much time remaining.
DEADLINE_SLACK_S = 0.5
# Methods polled by probes and tools: their access-log lines go at DEBUG, not INFO.
_QUIET_SERVICES = ("grpc.health.v1.", "grpc.reflection.")


def clean_request_id(value: object) -> str:
    """A client-given id as logged and echoed: printable ASCII, at most 128 characters."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
    return "".join(c for c in text if 32 < ord(c) < 127)[:MAX_REQUEST_ID_CHARS]


def _metadata_request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in getattr(details, "invocation_metadata", None) or ():
        if key.lower() == REQUEST_ID_METADATA_KEY:
            return clean_request_id(value)
    return ""


def _message_request_id(request: Any, request_id: str) -> str:
    """`request_id` of a request message: read it, or fill it in when empty (and ours)."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    fields = getattr(descriptor, "fields_by_name", None) or {}
    if "request_id" not in fields or not isinstance(getattr(request, "request_id", None), str):
        return request_id  # no singular string field of that name
    if request_id:
        if not request.request_id:
            request.request_id = request_id
        return request_id
    return clean_request_id(request.request_id)


def add_trailing_metadata(context: grpc.aio.ServicerContext, key: str, value: str) -> None:
    """Add one trailing metadata entry, keeping those already set."""
    try:
        existing = tuple(context.trailing_metadata() or ())
        context.set_trailing_metadata((*(kv for kv in existing if kv[0] != key), (key, value)))
    except Exception:  # noqa: BLE001 - trailing metadata is a courtesy
        pass


class _Call:
    """One RPC's bookkeeping: its id and start time."""

    def __init__(self, interceptor: ObservabilityInterceptor, method: str, full_method: str,
                 request_id: str) -> None:
        self.interceptor = interceptor
        self.method, self.full_method = method, full_method
        self.request_id = request_id
        self.start = time.perf_counter()

    async def begin(self, context: grpc.aio.ServicerContext, request: Any = None) -> None:
        """Settle the request id, set it for the task's logs and send it back."""
        if request is not None:
            try:
                self.request_id = _message_request_id(request, self.request_id)
            except Exception:  # noqa: BLE001 - a request id must never fail the RPC
                log.debug("could not read the request's request_id", exc_info=True)
        if not self.request_id:
            self.request_id = uuid.uuid4().hex
        REQUEST_ID.set(self.request_id)
        # Set now: an abort sends the trailing metadata set so far.
        add_trailing_metadata(context, REQUEST_ID_METADATA_KEY, self.request_id)
        try:
            await context.send_initial_metadata(((REQUEST_ID_METADATA_KEY, self.request_id),))
        except Exception:  # noqa: BLE001 - the client went away, or metadata was already sent
            pass

    def finish(self, context: grpc.aio.ServicerContext, how: str) -> None:
        """Record. `how`: "returned", "raised" or "cancelled" (the client went away)."""
        code = _code(context)
        if code is not None and code != grpc.StatusCode.OK:
            name = code.name
        elif how == "cancelled":
            remaining = _time_remaining(context)
            name = ("DEADLINE_EXCEEDED"
                    if remaining is not None and remaining <= DEADLINE_SLACK_S else "CANCELLED")
        elif how == "raised":
            name = "UNKNOWN"
        else:
            name = "OK"
        self.interceptor.record(self, name, time.perf_counter() - self.start)


def _code(context: grpc.aio.ServicerContext) -> Optional[grpc.StatusCode]:
    try:
        return context.code()
    except Exception:  # noqa: BLE001
        return None


def _time_remaining(context: grpc.aio.ServicerContext) -> Optional[float]:
    try:
        return context.time_remaining()
    except Exception:  # noqa: BLE001
        return None


def _how(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "cancelled"
    return "returned" if isinstance(exc, grpc.aio.AbortError) else "raised"


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, call: _Call, code: str, seconds: float) -> None:
        self._metrics.rpc_total.labels(call.method, code).inc()
        self._metrics.rpc_seconds.labels(call.method, code).observe(seconds)
        quiet = call.full_method.lstrip("/").startswith(_QUIET_SERVICES)
        access_log.log(logging.DEBUG if quiet else logging.INFO, "%s %s in %.3f s",
                       call.method, code, seconds,
                       extra={"request_id": call.request_id, "rpc_method": call.full_method,
                              "grpc_code": code, "duration_s": round(seconds, 6)})

    def _wrap_unary(self, method: str, full: str, request_id: str, streaming_request: bool,
                    behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(self, method, full, request_id)
            how = "raised"
            try:
                await call.begin(context, None if streaming_request else request_or_iterator)
                response = await behavior(request_or_iterator, context)
                how = "returned"
                return response
            except BaseException as exc:
                how = _how(exc)
                raise
            finally:
                call.finish(context, how)
        return handler

    def _wrap_stream(self, method: str, full: str, request_id: str, streaming_request: bool,
                     behavior: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):
            # A handler that writes with context.write (grpc.health's Watch) and returns.
            return self._wrap_unary(method, full, request_id, streaming_request, behavior)

        async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[Any]:
            call = _Call(self, method, full, request_id)
            how = "raised"
            try:
                await call.begin(context, None if streaming_request else request_or_iterator)
                async for item in behavior(request_or_iterator, context):
                    yield item
                how = "returned"
            except BaseException as exc:
                how = _how(exc)
                raise
            finally:
                call.finish(context, how)
        return handler

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails
                                ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        full = details.method
        method = full.rsplit("/", 1)[-1]
        rid = _metadata_request_id(details)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, full, rid, False, handler.unary_unary),
                handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, full, rid, True, handler.stream_unary),
                handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, full, rid, False, handler.unary_stream),
                handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, full, rid, True, handler.stream_stream),
            handler.request_deserializer, handler.response_serializer)
