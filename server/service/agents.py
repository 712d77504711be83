"""AgentService: the long-lived stream each device agent opens to the server."""

from __future__ import annotations

import hmac
import logging
import queue
import threading
from collections.abc import Callable, Iterator

import grpc

import edgescore
from edgescore.server.fleet.fleet import AgentSession, Fleet
from edgescore.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, fleet: Fleet, token: str | None = None,
                 on_register: Callable[[AgentSession], None] = lambda session: None) -> None:
        self._on_register = on_register
        self._fleet = fleet
        self._token = token

    def _authenticated(self, context: grpc.ServicerContext) -> bool:
        if not self._token:
            return True
        presented = dict(context.invocation_metadata()).get(edgescore.TOKEN_METADATA_KEY, "")
        return hmac.compare_digest(str(presented).encode(), self._token.encode())

    def Connect(self, request_iterator: Iterator[agent_pb2.AgentMessage],
                context: grpc.ServicerContext) -> Iterator[agent_pb2.ServerMessage]:
        if not self._authenticated(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong fleet token")
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        if first.WhichOneof("msg") != "register":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "register: the first agent message must be `register`")
        caps = first.register.capabilities
        if not caps.device_class:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "register.capabilities.device_class: is empty")
        session = self._fleet.register(caps, first.register.agent_id)
        self._on_register(session)
        reader = threading.Thread(target=self._read, args=(session, request_iterator),
                                  name=f"agent-{session.agent_id}", daemon=True)
        try:
            yield agent_pb2.ServerMessage(registered=agent_pb2.Registered(
                agent_id=session.agent_id,
                heartbeat_interval_seconds=self._fleet.heartbeat_interval,
                server_version=edgescore.__version__))
            reader.start()
            while context.is_active():
                try:
                    message = session.outbox.get(timeout=1.0)
                except queue.Empty:
                    continue
                if message is None:
                    break
                yield message
        finally:
            self._fleet.unregister(session, "stream closed")

    def _read(self, session: AgentSession, requests: Iterator[agent_pb2.AgentMessage]) -> None:
        try:
            for message in requests:
                kind = message.WhichOneof("msg")
                self._fleet.heartbeat(session)
                if kind in ("result", "failure"):
                    self._fleet.complete(session, message)
        except Exception:  # noqa: BLE001 - the agent went away; the fleet re-queues its job
            log.debug("agent %s stream ended", session.agent_id, exc_info=True)
        finally:
            self._fleet.unregister(session, "stream closed")
