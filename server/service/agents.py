"""AgentService: the long-lived stream each device agent opens to the server.

A connected agent costs the server two coroutines (its reader and its writer) and no thread, so a
fleet of any size leaves every other RPC answering.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable

import grpc

import edgescore
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.sessions import AgentSession
from edgescore.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, fleet: Fleet, token: str | None = None,
                 on_register: Callable[[AgentSession], None] = lambda session: None) -> None:
        self._on_register = on_register  # may block (the store): it runs on a thread
        self._fleet = fleet
        self._token = token

    def _authenticated(self, context: grpc.aio.ServicerContext) -> bool:
        if not self._token:
            return True
        presented = dict(context.invocation_metadata() or ()).get(edgescore.TOKEN_METADATA_KEY,
                                                                   "")
        return hmac.compare_digest(str(presented).encode(), self._token.encode())

    async def Connect(self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
                      context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[agent_pb2.ServerMessage]:
        if not self._authenticated(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong fleet token")
        messages = request_iterator.__aiter__()
        try:
            first = await messages.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("msg") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "register: the first agent message must be `register`")
        caps = first.register.capabilities
        if not caps.device_class:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "register.capabilities.device_class: is empty")
        session = self._fleet.register(caps, first.register.agent_id,
                                       loop=asyncio.get_running_loop())
        asyncio.get_running_loop().run_in_executor(None, self._on_register, session)
        reader = asyncio.create_task(self._read(session, messages))
        try:
            yield agent_pb2.ServerMessage(registered=agent_pb2.Registered(
                agent_id=session.agent_id,
                heartbeat_interval_seconds=self._fleet.heartbeat_interval,
                server_version=edgescore.__version__))
            while True:
                message = await session.outbox.next()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            self._fleet.unregister(session, "stream closed")

    async def _read(self, session: AgentSession,
                    messages: AsyncIterator[agent_pb2.AgentMessage]) -> None:
        try:
            async for message in messages:
                kind = message.WhichOneof("msg")
                self._fleet.heartbeat(session)
                if kind in ("result", "failure"):
                    self._fleet.complete(session, message)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the agent went away; the fleet re-queues its job
            log.debug("agent %s stream ended", session.agent_id, exc_info=True)
        finally:
            self._fleet.unregister(session, "stream closed")
