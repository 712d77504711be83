"""Server interceptors: RPC counts and durations by method and final status code.

The status is read after the handler has finished (or its response stream is exhausted), so a
handler that aborts is counted under the code it aborted with, not as OK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from edgescore.server.service.metrics import Metrics


def _code_name(context: grpc.ServicerContext, raised: bool) -> str:
    code = context.code()
    if code is None:
        return "UNKNOWN" if raised else "OK"
    return code.name


class MetricsInterceptor(grpc.ServerInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def _record(self, method: str, context: grpc.ServicerContext, start: float,
                raised: bool) -> None:
        code = _code_name(context, raised)
        self._metrics.rpc_total.labels(method, code).inc()
        self._metrics.rpc_seconds.labels(method, code).observe(time.perf_counter() - start)

    def _wrap_unary(self, method: str, behavior: Callable) -> Callable:
        def handler(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            start, raised = time.perf_counter(), True
            try:
                response = behavior(request_or_iterator, context)
                raised = False
                return response
            finally:
                self._record(method, context, start, raised)
        return handler

    def _wrap_stream(self, method: str, behavior: Callable) -> Callable:
        def handler(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator:
            start, raised = time.perf_counter(), True
            try:
                yield from behavior(request_or_iterator, context)
                raised = False
            except GeneratorExit:
                # The client went away mid-stream: count it as cancelled, not as an error.
                raised = False
                raise
            finally:
                self._record(method, context, start, raised)
        return handler

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream),
            handler.request_deserializer, handler.response_serializer)
