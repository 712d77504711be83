"""The asyncio SDK client: the same calls as `Client`, awaitable (grpc.aio underneath)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Callable

import grpc
from grpc import aio

from edgescore.client.api import DEFAULT_MAX_IN_FLIGHT
from edgescore.client.channel import CHANNEL_OPTIONS, metadata, resolve_credentials
from edgescore.client.errors import EdgescoreError
from edgescore.client.requests import Arch, ProxyArg, score_request
from edgescore.client.results import BatchItem, DeviceClass, ScoreResult
from edgescore.client.retry import RetryPolicy
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc, scoring_pb2, scoring_pb2_grpc


class AsyncClient:
    """`async with AsyncClient("host:port") as client: await client.score(...)`.

    Arguments, retries, deadlines and errors as in `Client`. Create it inside the event loop
    that uses it (grpc.aio channels belong to one loop).
    """

    def __init__(self, target: str, token: str | None = None, timeout: float | None = 600.0,
                 credentials: grpc.ChannelCredentials | None = None, *, tls_ca: str = "",
                 tls_cert: str = "", tls_key: str = "",
                 retry: RetryPolicy | None = None) -> None:
        credentials = resolve_credentials(credentials, tls_ca, tls_cert, tls_key)
        self._channel = (aio.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else aio.insecure_channel(target, CHANNEL_OPTIONS))
        self._scoring = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._fleet = fleet_pb2_grpc.FleetServiceStub(self._channel)
        self._token = token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    async def _call(self, method: Callable, request: Any, request_id: str = "") -> Any:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await method(request, timeout=left,
                                    metadata=metadata(self._token, request_id))
            except grpc.RpcError as exc:
                error = EdgescoreError.from_rpc_error(exc)
            pause = self.retry.pause_or_raise(error, attempt, deadline)
            await asyncio.sleep(pause)

    async def score(self, arch: Arch, proxies: Sequence[ProxyArg] = (),
                    devices: Sequence[str] = (), **options: Any) -> ScoreResult:
        """See `Client.score`."""
        request = score_request(arch, proxies, devices, **options)
        request.request_id = request.request_id or uuid.uuid4().hex
        response = await self._call(self._scoring.Score, request, request.request_id)
        return ScoreResult.from_pb(response)

    async def score_many(self, archs: Iterable[Arch], proxies: Sequence[ProxyArg] = (),
                         devices: Sequence[str] = (), *,
                         max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                         **options: Any) -> AsyncIterator[BatchItem]:
        """See `Client.score_many`: `async for item in client.score_many(archs, ...)`."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        items = enumerate(archs)

        async def one(index: int, arch: Arch) -> BatchItem:
            try:
                return BatchItem(index, arch, result=await self.score(
                    arch, proxies, devices, **options))
            except EdgescoreError as exc:
                return BatchItem(index, arch, error=exc)

        pending: set[asyncio.Task] = set()

        def fill() -> None:
            for index, arch in items:
                pending.add(asyncio.ensure_future(one(index, arch)))
                if len(pending) >= max_in_flight:
                    return

        try:
            fill()
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    yield task.result()
                fill()
        finally:
            for task in pending:
                task.cancel()

    async def proxies(self) -> list[scoring_pb2.ProxyInfo]:
        response = await self._call(self._scoring.ListProxies, scoring_pb2.ListProxiesRequest())
        return list(response.proxies)

    async def spaces(self) -> list[scoring_pb2.SearchSpaceInfo]:
        response = await self._call(self._scoring.ListSearchSpaces,
                                    scoring_pb2.ListSearchSpacesRequest())
        return list(response.spaces)

    async def devices(self) -> list[DeviceClass]:
        response = await self._call(self._fleet.ListDevices, fleet_pb2.ListDevicesRequest())
        return [DeviceClass.from_pb(d) for d in response.devices]

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
