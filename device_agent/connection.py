"""The agent's side of AgentService.Connect: register, heartbeat, run jobs, reconnect.

One connection attempt is a session.Session on a fresh channel. Jobs are measured in a child
process under a watchdog (isolation.ProcessRunner), kept across sessions.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence

import grpc

from edgescore import TOKEN_METADATA_KEY
from edgescore.device_agent.capabilities import collect_capabilities
from edgescore.device_agent.isolation import ProcessRunner
from edgescore.device_agent.metrics import AgentMetrics
from edgescore.device_agent.protocol import EXIT_OK, EXIT_UNAUTHENTICATED
from edgescore.device_agent.session import Session
from edgescore.device_agent.worker import WorkerOptions
from edgescore.transport import CHANNEL_OPTIONS
from edgescore.v1 import agent_pb2, agent_pb2_grpc, fleet_pb2

log = logging.getLogger(__name__)

# A wrong or missing token will not fix itself by retrying.
FATAL_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def backoff_delay(attempt: int, initial: float = 0.5, cap: float = 30.0) -> float:
    """Delay before reconnect `attempt` (0-based): initial·2^attempt, capped, ±20 % jitter."""
    base = min(cap, initial * (2 ** min(attempt, 30)))
    return base * random.uniform(0.8, 1.2)


class AgentConnection:
    """Keeps an agent connected to `server` until stop_event is set or the token is rejected."""

    def __init__(
        self,
        server: str,
        device_class: str,
        token: str | None = None,
        tags: Mapping[str, str] | None = None,
        heartbeat_fallback: float = 5.0,
        stop_event: threading.Event | None = None,
        register_timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        tls_server_name: str = "",
        metrics: AgentMetrics | None = None,
        worker_options: WorkerOptions | None = None,
        runner: Callable[..., agent_pb2.AgentMessage] | None = None,
        runtimes: Sequence[fleet_pb2.RuntimeInfo] | None = None,
    ) -> None:
        self.server = server
        self.device_class = device_class
        self.token = token
        self.tags = dict(tags or {})
        self.heartbeat_fallback = heartbeat_fallback
        self.stop_event = stop_event or threading.Event()
        self.register_timeout = register_timeout
        self.backoff_initial = backoff_initial
        self.backoff_cap = backoff_cap
        self.credentials = credentials  # None: plain text (loopback, trusted lab networks)
        self.channel_options = list(CHANNEL_OPTIONS)
        if tls_server_name:
            self.channel_options.append(("grpc.ssl_target_name_override", tls_server_name))
        self.metrics = metrics or AgentMetrics()
        self.worker_options = worker_options or WorkerOptions()
        # A replay agent answers from a table: its own runner and runtimes replace the real ones.
        self._process_runner = ProcessRunner() if runner is None else None
        self.runner = runner or self._process_runner
        self.runtimes = list(runtimes) if runtimes is not None else None
        self.agent_id = ""  # assigned by the first Registered, presented again on reconnect
        self.measure_lock = threading.Lock()
        self._capabilities: agent_pb2.Capabilities | None = None

    def run(self) -> int:
        """Connect, serve, reconnect with backoff. Returns EXIT_OK or EXIT_UNAUTHENTICATED."""
        if self._process_runner is not None:
            self._process_runner.warm_up()  # its child imports the runtimes while we connect
        try:
            if self._capabilities is None:
                self._capabilities = collect_capabilities(self.device_class, self.tags)
                if self.runtimes is not None:
                    del self._capabilities.runtimes[:]
                    self._capabilities.runtimes.extend(self.runtimes)
            return self._run()
        finally:
            if self._process_runner is not None:
                self._process_runner.close()

    def _run(self) -> int:
        attempt = 0
        while not self.stop_event.is_set():
            log.info("connecting to %s as device class %r", self.server, self.device_class)
            registered, code, detail = self._serve_once()
            if self.stop_event.is_set():
                break
            if code in FATAL_CODES:
                log.error(
                    "server %s rejected this agent (%s: %s); check --token / EDGESCORE_AGENT_TOKEN",
                    self.server,
                    code.name,
                    detail,
                )
                return EXIT_UNAUTHENTICATED
            if registered:
                attempt = 0
            delay = backoff_delay(attempt, self.backoff_initial, self.backoff_cap)
            attempt += 1
            reason = f"{code.name}: {detail}" if code is not None else "stream closed by server"
            log.warning("disconnected (%s); reconnecting in %.1fs", reason, delay)
            if self.stop_event.wait(delay):
                break
        log.info("agent stopped")
        return EXIT_OK

    def _serve_once(self) -> tuple[bool, grpc.StatusCode | None, str]:
        """One connection attempt: (registered?, final status code or None if closed OK, detail)."""
        session = Session(self)
        metadata = [(TOKEN_METADATA_KEY, self.token)] if self.token else None
        if self.credentials is not None:
            channel = grpc.secure_channel(self.server, self.credentials, self.channel_options)
        else:
            channel = grpc.insecure_channel(self.server, options=self.channel_options)
        code, detail = None, ""
        try:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            # Register is queued before the call starts, so it is always the first message.
            session.send(
                agent_pb2.AgentMessage(
                    register=agent_pb2.Register(
                        capabilities=self._capabilities, agent_id=self.agent_id
                    )
                )
            )
            session.call = stub.Connect(session.requests(), metadata=metadata)
            threads = [
                threading.Thread(target=session.ticker, name="agent-ticker", daemon=True),
                threading.Thread(target=session.worker, name="agent-worker", daemon=True),
            ]
            for t in threads:
                t.start()
            try:
                for msg in session.call:
                    session.handle(msg)
            except grpc.RpcError as err:
                code, detail = err.code(), err.details() or ""
                if session.register_timed_out:
                    detail = "no Registered in time"
        finally:
            session.close()
            channel.close()
        return session.registered, code, detail


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """TLS credentials from PEM files: `ca` signed the server cert ("default" or empty: gRPC's
    bundled roots); `cert` + `key` present a client certificate for mutual TLS."""

    def read(path: str) -> bytes | None:
        if not path or path == "default":
            return None
        with open(path, "rb") as fh:
            return fh.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert)
    )
