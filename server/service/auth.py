"""The API token: with `--api-token` set, the scoring and fleet services and reflection answer only
calls that present it (metadata `x-edgescore-token`, as agents present the fleet token); anything
else is UNAUTHENTICATED before a handler runs. Reflection lists every method and message of the
API, so it is as private as the API itself (grpcurl passes the token with -H). Health stays open
for load balancers' and orchestrators' probes, and the agent service keeps its own (fleet) token."""

from __future__ import annotations

import hmac
from typing import Any, Callable

import grpc

import edgescore

PROTECTED = ("/edgescore.v1.ScoringService/", "/edgescore.v1.FleetService/",
             "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


def _deny(message: str) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return handler


class TokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        if not details.method.startswith(PROTECTED):
            return await continuation(details)
        presented = next((v for k, v in details.invocation_metadata or ()
                          if k == edgescore.TOKEN_METADATA_KEY), None)
        if presented is not None and hmac.compare_digest(str(presented).encode(), self._token):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        deny = _deny("missing or wrong API token (metadata "
                     f"'{edgescore.TOKEN_METADATA_KEY}')")
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                deny, handler.request_deserializer, handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            deny, handler.request_deserializer, handler.response_serializer)
