"""Requests that are not valid protobuf answer INVALID_ARGUMENT.

grpc.aio answers UNKNOWN ("Unexpected <class DecodeError>") when a method's deserializer raises:
the status says "server bug" where the client sent bytes that are not the method's message. The
interceptor gives every method a deserializer that hands such bytes on as `Undecodable`, and the
handler (or the request stream, item by item) aborts with INVALID_ARGUMENT naming the message type.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

import grpc

from edgescore.server.errors import shown


class Undecodable:
    """Bytes the method's deserializer refused, and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserializer: Optional[Callable[[bytes], Any]]) -> Optional[Callable]:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or a message over a nesting or size limit
            return Undecodable(f"{type(exc).__name__}: {shown(str(exc))}")

    return deserialize


async def _refuse(context: grpc.aio.ServicerContext, method: str, request: Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request is not a valid {method} request message ({request.reason})")


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext,
                   method: str) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            await _refuse(context, method, request)
        yield request


def _wrap(behavior: Callable, method: str, streaming_request: bool) -> Callable:
    """`behavior` with its request(s) checked first, of the same kind (grpc.aio tells an async
    generator handler from a coroutine one by its function)."""
    def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return _checked(request, context, method) if streaming_request else request

    if inspect.isasyncgenfunction(behavior):
        async def stream_handler(request: Any, context: grpc.aio.ServicerContext
                                 ) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await _refuse(context, method, request)
            async for response in behavior(checked(request, context), context):
                yield response

        return stream_handler

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await _refuse(context, method, request)
        return await behavior(checked(request, context), context)

    return handler


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        deserializer = _tolerant(handler.request_deserializer)
        serializer = handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap(handler.unary_unary, method, False), deserializer, serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap(handler.unary_stream, method, False), deserializer, serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap(handler.stream_unary, method, True), deserializer, serializer)
        return grpc.stream_stream_rpc_method_handler(
            _wrap(handler.stream_stream, method, True), deserializer, serializer)
